//! The registry's errors, each with the Confluent error code its clients know. The HTTP
//! status is the code's first three digits (40401 → 404), as in Confluent's registry.

/// What a registry request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 40401.
    #[error("Subject '{0}' not found.")]
    SubjectNotFound(String),
    /// 40402.
    #[error("Version {version} not found for subject '{subject}'.")]
    VersionNotFound {
        /// The subject.
        subject: String,
        /// The version asked for, as given.
        version: String,
    },
    /// 40403.
    #[error("Schema {0} not found")]
    SchemaNotFound(String),
    /// 40404.
    #[error("Subject '{0}' was soft deleted. Set permanent=true to delete permanently")]
    SubjectSoftDeleted(String),
    /// 40405.
    #[error("Subject '{0}' was not deleted first before being permanently deleted")]
    SubjectNotSoftDeleted(String),
    /// 40406.
    #[error("Subject '{subject}' Version {version} was soft deleted. Set permanent=true to delete permanently")]
    VersionSoftDeleted {
        /// The subject.
        subject: String,
        /// The version.
        version: i64,
    },
    /// 40407.
    #[error("Subject '{subject}' Version {version} was not deleted first before being permanently deleted")]
    VersionNotSoftDeleted {
        /// The subject.
        subject: String,
        /// The version.
        version: i64,
    },
    /// 40408.
    #[error("Subject '{0}' does not have subject-level compatibility configured")]
    NoSubjectCompatibility(String),
    /// 40409.
    #[error("Subject '{0}' does not have subject-level mode configured")]
    NoSubjectMode(String),
    /// 409: the schema breaks the subject's compatibility level.
    #[error("Schema being registered is incompatible with an earlier schema for subject \"{subject}\", details: [{}]", .messages.join(", "))]
    Incompatible {
        /// The subject.
        subject: String,
        /// What is incompatible, one message per difference.
        messages: Vec<String>,
    },
    /// 42201.
    #[error("Invalid schema: {0}")]
    InvalidSchema(String),
    /// 42202.
    #[error("The specified version '{0}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\"")]
    InvalidVersion(String),
    /// 42203.
    #[error("Invalid compatibility level. Valid values are none, backward, forward, full, backward_transitive, forward_transitive, and full_transitive")]
    InvalidCompatibility,
    /// 42204.
    #[error("Invalid mode. Valid values are READWRITE and READONLY")]
    InvalidMode,
    /// 42205.
    #[error("Subject '{0}' is in read-only mode")]
    ReadOnly(String),
    /// 42206.
    #[error("One or more references exist to the schema {{subject={subject}, version={version}}}")]
    ReferenceExists {
        /// The subject.
        subject: String,
        /// The version.
        version: i64,
    },
    /// 400-class: a body that is not the JSON the endpoint takes.
    #[error("Unrecognized request: {0}")]
    BadRequest(String),
    /// 50001.
    #[error("Error in the backend data store")]
    Store(#[from] floe_meta::Error),
    /// 50001: a stored row the registry cannot read back.
    #[error("Error in the backend data store: {0}")]
    Corrupt(String),
}

impl Error {
    /// The Confluent error code.
    pub fn code(&self) -> u32 {
        match self {
            Error::SubjectNotFound(_) => 40401,
            Error::VersionNotFound { .. } => 40402,
            Error::SchemaNotFound(_) => 40403,
            Error::SubjectSoftDeleted(_) => 40404,
            Error::SubjectNotSoftDeleted(_) => 40405,
            Error::VersionSoftDeleted { .. } => 40406,
            Error::VersionNotSoftDeleted { .. } => 40407,
            Error::NoSubjectCompatibility(_) => 40408,
            Error::NoSubjectMode(_) => 40409,
            Error::Incompatible { .. } => 409,
            Error::InvalidSchema(_) => 42201,
            Error::InvalidVersion(_) => 42202,
            Error::InvalidCompatibility => 42203,
            Error::InvalidMode => 42204,
            Error::ReadOnly(_) => 42205,
            Error::ReferenceExists { .. } => 42206,
            Error::BadRequest(_) => 400,
            Error::Store(_) | Error::Corrupt(_) => 50001,
        }
    }

    /// The HTTP status: the code's first three digits.
    pub fn status(&self) -> u16 {
        let code = self.code();
        let status = if code >= 10_000 { code / 100 } else { code };
        u16::try_from(status).unwrap_or(500)
    }
}

/// The registry's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
