"""kafka-topics.sh's --create, --alter --partitions and --delete, as Apache Kafka 3+ runs
them: CreateTopics, CreatePartitions and DeleteTopics through the admin API.

Usage (the options librdkafka's tests pass):
  kafka-topics.sh --bootstrap-server HOST:PORT --create --topic T --partitions N
                  --replication-factor R [--config K=V ...]
  kafka-topics.sh --bootstrap-server HOST:PORT --alter --topic T --partitions N
  kafka-topics.sh --bootstrap-server HOST:PORT --delete --topic T

Exits 1 with the broker's error, as the real tool does.
"""

import argparse
import sys

from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic

p = argparse.ArgumentParser(prog="kafka-topics.sh")
p.add_argument("--bootstrap-server", required=True)
action = p.add_mutually_exclusive_group(required=True)
action.add_argument("--create", action="store_true")
action.add_argument("--alter", action="store_true")
action.add_argument("--delete", action="store_true")
p.add_argument("--topic", required=True)
p.add_argument("--partitions", type=int)
p.add_argument("--replication-factor", type=int, default=-1)
p.add_argument("--config", action="append", default=[])
args = p.parse_args()

admin = AdminClient({"bootstrap.servers": args.bootstrap_server})
if args.create:
    configs = dict(c.split("=", 1) for c in args.config)
    topic = NewTopic(
        args.topic,
        num_partitions=args.partitions or -1,
        replication_factor=args.replication_factor,
        config=configs,
    )
    futures = admin.create_topics([topic], request_timeout=30)
elif args.alter:
    if args.partitions is None:
        p.error("--alter needs --partitions (the only change this stand-in makes)")
    futures = admin.create_partitions(
        [NewPartitions(args.topic, args.partitions)], request_timeout=30
    )
else:
    futures = admin.delete_topics([args.topic], request_timeout=30)

try:
    for f in futures.values():
        f.result()
except Exception as e:  # the real tool prints the error and exits 1
    print(f"Error while executing topic command : {e}", file=sys.stderr)
    sys.exit(1)
if args.create:
    print(f"Created topic {args.topic}.")
