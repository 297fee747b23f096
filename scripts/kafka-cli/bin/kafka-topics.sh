#!/usr/bin/env bash
# A stand-in for Apache Kafka's bin/kafka-topics.sh, for librdkafka's own tests
# (scripts/librdkafka-tests.sh points their KAFKA_PATH here): Kafka's distribution is not
# downloadable on the machines the tests run on. It takes the options those tests pass
# and sends the same admin requests the real tool sends, through confluent-kafka.
exec python3 "$(dirname "$0")/../kafka_topics.py" "$@"
