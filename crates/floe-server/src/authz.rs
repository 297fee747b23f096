//! What a client may do with a resource, as Kafka's APIs report it (KIP-430's authorized
//! operations in Metadata, DescribeCluster, DescribeTopicPartitions, DescribeGroups and
//! ConsumerGroupDescribe).
//!
//! Floe has no authentication or ACLs yet, so every client may do every operation a
//! resource supports, which is what Kafka reports without an authorizer. This is where
//! an authorizer plugs in (ARCHITECTURE §5): the handlers ask here, not elsewhere.

/// A resource type, as Kafka's ACLs name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// The cluster.
    Cluster,
    /// A topic.
    Topic,
    /// A consumer group.
    Group,
}

// Kafka's `AclOperation` codes.
const READ: u8 = 3;
const WRITE: u8 = 4;
const CREATE: u8 = 5;
const DELETE: u8 = 6;
const ALTER: u8 = 7;
const DESCRIBE: u8 = 8;
const CLUSTER_ACTION: u8 = 9;
const DESCRIBE_CONFIGS: u8 = 10;
const ALTER_CONFIGS: u8 = 11;
const IDEMPOTENT_WRITE: u8 = 12;

/// The operations the client may perform on `resource`, as the protocol's bit field
/// (bit n set: operation n allowed); the operations each resource supports are Kafka's.
pub fn authorized_operations(resource: Resource) -> i32 {
    let ops: &[u8] = match resource {
        Resource::Cluster => &[
            CREATE,
            ALTER,
            DESCRIBE,
            CLUSTER_ACTION,
            DESCRIBE_CONFIGS,
            ALTER_CONFIGS,
            IDEMPOTENT_WRITE,
        ],
        Resource::Topic => &[
            READ,
            WRITE,
            CREATE,
            DELETE,
            ALTER,
            DESCRIBE,
            DESCRIBE_CONFIGS,
            ALTER_CONFIGS,
        ],
        Resource::Group => &[READ, DESCRIBE, DELETE],
    };
    ops.iter().fold(0, |bits, op| bits | (1 << op))
}

/// What a response carries when the client did not ask for authorized operations
/// (Kafka's `Integer.MIN_VALUE`).
pub const NOT_REQUESTED: i32 = i32::MIN;

/// [`authorized_operations`] if `asked`, else [`NOT_REQUESTED`].
pub fn if_asked(asked: bool, resource: Resource) -> i32 {
    if asked {
        authorized_operations(resource)
    } else {
        NOT_REQUESTED
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafkas_bit_fields() {
        // What Kafka 4 reports without an authorizer (AclOperation codes as bits).
        assert_eq!(authorized_operations(Resource::Topic), 3576);
        assert_eq!(authorized_operations(Resource::Cluster), 8096);
        assert_eq!(authorized_operations(Resource::Group), 328);
        assert_eq!(if_asked(false, Resource::Topic), i32::MIN);
    }
}
