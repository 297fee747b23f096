//! The registry's operations over the metadata store: what may be registered, looked up
//! and deleted, with Confluent's semantics (global ids shared across subjects, versions
//! from 1, soft delete before hard delete, a version others refer to cannot go).

use floe_meta::{MetaStore, RegistrySetting, StoredSchema, SubjectVersion};
use serde::Deserialize;
use tokio::sync::Mutex;
use tracing::info;

use crate::compat::Level;
use crate::error::{Error, Result};
use crate::schema::{self, Dependency, Parsed, Reference, SchemaType};

/// How deep references may nest (a reference's references, ...).
const MAX_REFERENCE_DEPTH: usize = 32;

/// The body of a register, lookup or compatibility request.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SchemaRequest {
    /// The schema text.
    pub schema: String,
    /// AVRO (default), PROTOBUF or JSON.
    #[serde(default)]
    pub schema_type: Option<String>,
    /// Other subjects' versions it uses.
    #[serde(default)]
    pub references: Vec<Reference>,
}

/// A subject's version with its schema.
#[derive(Debug, Clone)]
pub struct Registered {
    /// Subject.
    pub subject: String,
    /// Version.
    pub version: i64,
    /// Global id.
    pub id: i64,
    /// Format.
    pub schema_type: SchemaType,
    /// Text.
    pub schema: String,
    /// References.
    pub references: Vec<Reference>,
}

/// Which version a request names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionSpec {
    /// `latest` or -1.
    Latest,
    /// A number from 1.
    Number(i64),
}

impl VersionSpec {
    /// Reads a version from a path segment.
    ///
    /// # Errors
    /// 42202 for anything but `latest`, -1 or 1..2^31-1.
    pub fn parse(s: &str) -> Result<Self> {
        if s.eq_ignore_ascii_case("latest") {
            return Ok(VersionSpec::Latest);
        }
        match s.parse::<i64>() {
            Ok(-1) => Ok(VersionSpec::Latest),
            Ok(n) if (1..=i64::from(i32::MAX)).contains(&n) => Ok(VersionSpec::Number(n)),
            _ => Err(Error::InvalidVersion(s.to_string())),
        }
    }
}

/// A schema parsed from a request, ready to be stored.
struct Candidate {
    ty: SchemaType,
    stored: String,
    refs: Vec<Reference>,
    parsed: Parsed,
    fingerprint: String,
}

/// What else must accept a new version before it is stored: the broker's typed tables,
/// which refuse a version their table cannot take (beyond the format's own rule).
#[async_trait::async_trait]
pub trait Guard: Send + Sync {
    /// Why `subject` may not take this schema (`references`: the schemas it references,
    /// by the names it uses for them, dependencies first), or Ok.
    async fn check(
        &self,
        subject: &str,
        schema_type: SchemaType,
        schema: &str,
        references: &[Dependency],
    ) -> std::result::Result<(), String>;
}

/// The schema registry.
pub struct Registry {
    store: MetaStore,
    guard: std::sync::OnceLock<std::sync::Arc<dyn Guard>>,
    /// One registration at a time on this broker: the compatibility check and the
    /// insert must see the same history. (Several brokers on one Postgres: the store's
    /// primary key on (subject, version) keeps versions unique; the check may then race.)
    register: Mutex<()>,
    /// Counts the registrations and deletions made through this registry, so that
    /// readers that cache a subject's latest version see this broker's changes at once
    /// ([`Registry::changes`]).
    changes: std::sync::atomic::AtomicU64,
}

impl Registry {
    /// A registry over the metadata store.
    pub fn new(store: MetaStore) -> Self {
        Self {
            store,
            guard: std::sync::OnceLock::new(),
            register: Mutex::new(()),
            changes: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// How many registrations and deletions this registry has made: a reader that
    /// cached what it read when this was `n` may keep it while it still is. Another
    /// broker's changes (one Postgres) are not counted; such readers bound their
    /// cache's age too.
    pub fn changes(&self) -> u64 {
        self.changes.load(std::sync::atomic::Ordering::Acquire)
    }

    fn changed(&self) {
        self.changes
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// Installs the [`Guard`] (once; a second call is ignored).
    pub fn set_guard(&self, guard: std::sync::Arc<dyn Guard>) {
        let _ = self.guard.set(guard);
    }

    /// Subjects with a live version (with `deleted`, soft-deleted ones too), sorted,
    /// those starting with `prefix`.
    pub async fn subjects(&self, deleted: bool, prefix: &str) -> Result<Vec<String>> {
        let mut out: Vec<String> = Vec::new();
        for v in self.store.registry_versions(None).await? {
            if (deleted || !v.deleted)
                && v.subject.starts_with(prefix)
                && out.last() != Some(&v.subject)
            {
                out.push(v.subject);
            }
        }
        Ok(out)
    }

    /// A subject's versions; 40401 when it has none visible.
    pub async fn versions(&self, subject: &str, deleted: bool) -> Result<Vec<i64>> {
        let versions: Vec<i64> = self
            .store
            .registry_versions(Some(subject))
            .await?
            .into_iter()
            .filter(|v| deleted || !v.deleted)
            .map(|v| v.version)
            .collect();
        if versions.is_empty() {
            return Err(Error::SubjectNotFound(subject.into()));
        }
        Ok(versions)
    }

    /// One version of a subject with its schema.
    pub async fn version(
        &self,
        subject: &str,
        spec: VersionSpec,
        deleted: bool,
    ) -> Result<Registered> {
        let row = self.find_version(subject, spec, deleted).await?;
        self.registered(row).await
    }

    /// The schema with global id `id`; 40403 when there is none.
    pub async fn schema(&self, id: i64) -> Result<(StoredSchema, SchemaType, Vec<Reference>)> {
        let stored = self
            .store
            .registry_schema(id)
            .await?
            .ok_or_else(|| Error::SchemaNotFound(id.to_string()))?;
        let (ty, refs) = decode_row(&stored)?;
        Ok((stored, ty, refs))
    }

    /// The schema with global id `id` and what it references, by the names it uses
    /// (dependencies first), as typed landing decodes with them; None when there is no
    /// such id.
    pub async fn resolved(&self, id: i64) -> Result<Option<(SchemaType, String, Vec<Dependency>)>> {
        let Some(stored) = self.store.registry_schema(id).await? else {
            return Ok(None);
        };
        let (ty, refs) = decode_row(&stored)?;
        let deps = self.dependencies(&refs, 0).await?;
        Ok(Some((ty, stored.schema, deps)))
    }

    /// The global id of the latest live version of `subject`, if it has one.
    pub async fn latest_id(&self, subject: &str) -> Result<Option<i64>> {
        match self.find_version(subject, VersionSpec::Latest, false).await {
            Ok(v) => Ok(Some(v.schema_id)),
            Err(Error::SubjectNotFound(_) | Error::VersionNotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The (subject, version) pairs that hold schema `id`.
    pub async fn id_versions(&self, id: i64, deleted: bool) -> Result<Vec<(String, i64)>> {
        self.schema(id).await?;
        Ok(self
            .store
            .registry_versions(None)
            .await?
            .into_iter()
            .filter(|v| v.schema_id == id && (deleted || !v.deleted))
            .map(|v| (v.subject, v.version))
            .collect())
    }

    /// The ids of live schemas that refer to `subject`'s `version`.
    pub async fn referenced_by(&self, subject: &str, spec: VersionSpec) -> Result<Vec<i64>> {
        let target = self.find_version(subject, spec, false).await?;
        let mut ids = Vec::new();
        for v in self.store.registry_versions(None).await? {
            if v.deleted || ids.contains(&v.schema_id) {
                continue;
            }
            let Some(stored) = self.store.registry_schema(v.schema_id).await? else {
                continue;
            };
            let (_, refs) = decode_row(&stored)?;
            if refs
                .iter()
                .any(|r| r.subject == target.subject && r.version == target.version)
            {
                ids.push(v.schema_id);
            }
        }
        ids.sort_unstable();
        Ok(ids)
    }

    /// Registers a schema under `subject`: the id it already has there, or the next
    /// version after the compatibility check (409 with the reasons when it fails).
    pub async fn register(&self, subject: &str, req: SchemaRequest) -> Result<Registered> {
        let _one = self.register.lock().await;
        self.writable(subject).await?;
        let candidate = self.candidate(req).await?;
        let history = self.store.registry_versions(Some(subject)).await?;
        if let Some(found) = self.matching(&history, &candidate, false).await? {
            return self.registered(found).await;
        }
        let level = self.compatibility(Some(subject), true).await?;
        let messages = self.check(level, &history, &candidate.parsed).await?;
        if !messages.is_empty() {
            info!(
                subject,
                level = level.as_str(),
                ?messages,
                "schema refused: incompatible"
            );
            return Err(Error::Incompatible {
                subject: subject.into(),
                messages,
            });
        }
        if let Some(guard) = self.guard.get() {
            let deps = self.dependencies(&candidate.refs, 0).await?;
            if let Err(why) = guard
                .check(subject, candidate.ty, &candidate.stored, &deps)
                .await
            {
                info!(subject, reason = %why, "schema refused by a typed table");
                return Err(Error::Incompatible {
                    subject: subject.into(),
                    messages: vec![why],
                });
            }
        }
        let refs =
            serde_json::to_string(&candidate.refs).map_err(|e| Error::Corrupt(e.to_string()))?;
        let (id, version) = self
            .store
            .registry_register(
                subject,
                candidate.ty.as_str(),
                &candidate.stored,
                &refs,
                &candidate.fingerprint,
            )
            .await?;
        self.changed();
        info!(
            subject,
            id,
            version,
            schema_type = candidate.ty.as_str(),
            "schema registered"
        );
        Ok(Registered {
            subject: subject.into(),
            version,
            id,
            schema_type: candidate.ty,
            schema: candidate.stored,
            references: candidate.refs,
        })
    }

    /// The version of `subject` that holds this schema (40401 no such subject, 40403 not
    /// under it).
    pub async fn lookup(
        &self,
        subject: &str,
        req: SchemaRequest,
        deleted: bool,
    ) -> Result<Registered> {
        let history = self.store.registry_versions(Some(subject)).await?;
        if !history.iter().any(|v| deleted || !v.deleted) {
            return Err(Error::SubjectNotFound(subject.into()));
        }
        let candidate = self.candidate(req).await?;
        match self.matching(&history, &candidate, deleted).await? {
            Some(found) => self.registered(found).await,
            None => Err(Error::SchemaNotFound(format!("under subject {subject:?}"))),
        }
    }

    /// Whether the schema could be registered as the next version of `subject`, checked
    /// against `spec` (None: what the subject's level checks). Returns the reasons it
    /// could not (empty: it could).
    pub async fn test_compatibility(
        &self,
        subject: &str,
        spec: Option<VersionSpec>,
        req: SchemaRequest,
    ) -> Result<Vec<String>> {
        let candidate = self.candidate(req).await?;
        let level = self.compatibility(Some(subject), true).await?;
        let history = self.store.registry_versions(Some(subject)).await?;
        match spec {
            None => self.check(level, &history, &candidate.parsed).await,
            Some(spec) => {
                let one = self.find_version(subject, spec, false).await?;
                self.check(level, &[one], &candidate.parsed).await
            }
        }
    }

    /// Deletes every version of `subject`: soft (hidden, the versions stay numbered), or
    /// with `permanent` for good once soft-deleted. Returns the versions.
    pub async fn delete_subject(&self, subject: &str, permanent: bool) -> Result<Vec<i64>> {
        let _one = self.register.lock().await;
        self.writable(subject).await?;
        let history = self.store.registry_versions(Some(subject)).await?;
        if history.is_empty() {
            return Err(Error::SubjectNotFound(subject.into()));
        }
        let live: Vec<&SubjectVersion> = history.iter().filter(|v| !v.deleted).collect();
        if permanent {
            if !live.is_empty() {
                return Err(Error::SubjectNotSoftDeleted(subject.into()));
            }
        } else if live.is_empty() {
            return Err(Error::SubjectSoftDeleted(subject.into()));
        }
        for v in &history {
            self.not_referenced(subject, v.version).await?;
        }
        if permanent {
            self.store.registry_hard_delete(subject, None).await?;
            self.changed();
            info!(subject, "subject deleted permanently");
            Ok(history.iter().map(|v| v.version).collect())
        } else {
            self.store.registry_soft_delete(subject, None).await?;
            self.changed();
            info!(subject, "subject soft-deleted");
            Ok(live.iter().map(|v| v.version).collect())
        }
    }

    /// Deletes one version, soft or (once soft-deleted) permanently.
    pub async fn delete_version(
        &self,
        subject: &str,
        spec: VersionSpec,
        permanent: bool,
    ) -> Result<i64> {
        let _one = self.register.lock().await;
        self.writable(subject).await?;
        let row = self.find_version(subject, spec, permanent).await?;
        self.not_referenced(subject, row.version).await?;
        if permanent {
            if !row.deleted {
                return Err(Error::VersionNotSoftDeleted {
                    subject: subject.into(),
                    version: row.version,
                });
            }
            self.store
                .registry_hard_delete(subject, Some(row.version))
                .await?;
        } else {
            self.store
                .registry_soft_delete(subject, Some(row.version))
                .await?;
        }
        self.changed();
        info!(
            subject,
            version = row.version,
            permanent,
            "schema version deleted"
        );
        Ok(row.version)
    }

    /// The compatibility level of `subject` (None: the global one). With `fallback`, an
    /// unset subject level falls back to the global one and that to BACKWARD; without,
    /// an unset subject level is 40408.
    pub async fn compatibility(&self, subject: Option<&str>, fallback: bool) -> Result<Level> {
        let own = match subject {
            Some(s) => self.setting(s, RegistrySetting::Compatibility).await?,
            None => None,
        };
        if let Some(level) = own {
            return Level::parse(&level)
                .ok_or_else(|| Error::Corrupt(format!("compatibility {level:?}")));
        }
        if let (Some(s), false) = (subject, fallback) {
            return Err(Error::NoSubjectCompatibility(s.into()));
        }
        Ok(
            match self.setting("", RegistrySetting::Compatibility).await? {
                Some(level) => Level::parse(&level)
                    .ok_or_else(|| Error::Corrupt(format!("compatibility {level:?}")))?,
                None => Level::DEFAULT,
            },
        )
    }

    /// Sets the compatibility level of `subject` (None: the global one).
    pub async fn set_compatibility(&self, subject: Option<&str>, level: &str) -> Result<Level> {
        let level = Level::parse(level).ok_or(Error::InvalidCompatibility)?;
        self.store
            .registry_set_setting(
                subject.unwrap_or(""),
                RegistrySetting::Compatibility,
                Some(level.as_str()),
            )
            .await?;
        info!(
            subject = subject.unwrap_or("(global)"),
            level = level.as_str(),
            "compatibility set"
        );
        Ok(level)
    }

    /// Clears the level of `subject` (None: the global one, back to BACKWARD); returns
    /// the level it had.
    pub async fn delete_compatibility(&self, subject: Option<&str>) -> Result<Level> {
        let before = self.compatibility(subject, subject.is_none()).await?;
        self.store
            .registry_set_setting(subject.unwrap_or(""), RegistrySetting::Compatibility, None)
            .await?;
        Ok(before)
    }

    /// The mode of `subject` (None: the global one), with the same fallback rule as
    /// [`Self::compatibility`] (40409 when unset and not falling back).
    pub async fn mode(&self, subject: Option<&str>, fallback: bool) -> Result<Mode> {
        if let Some(s) = subject {
            if let Some(mode) = self.setting(s, RegistrySetting::Mode).await? {
                return Mode::parse(&mode).ok_or_else(|| Error::Corrupt(format!("mode {mode:?}")));
            }
            if !fallback {
                return Err(Error::NoSubjectMode(s.into()));
            }
        }
        Ok(match self.setting("", RegistrySetting::Mode).await? {
            Some(mode) => {
                Mode::parse(&mode).ok_or_else(|| Error::Corrupt(format!("mode {mode:?}")))?
            }
            None => Mode::ReadWrite,
        })
    }

    /// Sets the mode of `subject` (None: the global one).
    pub async fn set_mode(&self, subject: Option<&str>, mode: &str) -> Result<Mode> {
        let mode = Mode::parse(mode).ok_or(Error::InvalidMode)?;
        self.store
            .registry_set_setting(
                subject.unwrap_or(""),
                RegistrySetting::Mode,
                Some(mode.as_str()),
            )
            .await?;
        info!(
            subject = subject.unwrap_or("(global)"),
            mode = mode.as_str(),
            "mode set"
        );
        Ok(mode)
    }

    /// Clears the mode of `subject` (None: the global one); returns the mode it had.
    pub async fn delete_mode(&self, subject: Option<&str>) -> Result<Mode> {
        let before = self.mode(subject, subject.is_none()).await?;
        self.store
            .registry_set_setting(subject.unwrap_or(""), RegistrySetting::Mode, None)
            .await?;
        Ok(before)
    }

    async fn setting(&self, subject: &str, setting: RegistrySetting) -> Result<Option<String>> {
        Ok(self.store.registry_setting(subject, setting).await?)
    }

    async fn writable(&self, subject: &str) -> Result<()> {
        match self.mode(Some(subject), true).await? {
            Mode::ReadWrite => Ok(()),
            Mode::ReadOnly => Err(Error::ReadOnly(subject.into())),
        }
    }

    async fn find_version(
        &self,
        subject: &str,
        spec: VersionSpec,
        deleted: bool,
    ) -> Result<SubjectVersion> {
        let history = self.store.registry_versions(Some(subject)).await?;
        if history.is_empty() {
            return Err(Error::SubjectNotFound(subject.into()));
        }
        let visible = |v: &&SubjectVersion| deleted || !v.deleted;
        let found = match spec {
            VersionSpec::Latest => history.iter().rfind(visible),
            VersionSpec::Number(n) => history.iter().filter(visible).find(|v| v.version == n),
        };
        match found {
            Some(v) => Ok(v.clone()),
            None if !history.iter().any(|v| !v.deleted) && !deleted => {
                Err(Error::SubjectNotFound(subject.into()))
            }
            None => Err(Error::VersionNotFound {
                subject: subject.into(),
                version: match spec {
                    VersionSpec::Latest => "latest".into(),
                    VersionSpec::Number(n) => n.to_string(),
                },
            }),
        }
    }

    async fn registered(&self, row: SubjectVersion) -> Result<Registered> {
        let (stored, ty, refs) = self.schema(row.schema_id).await?;
        Ok(Registered {
            subject: row.subject,
            version: row.version,
            id: row.schema_id,
            schema_type: ty,
            schema: stored.schema,
            references: refs,
        })
    }

    /// Parses a request's schema, resolving its references (a reference to "latest" is
    /// stored as the version it resolved to).
    async fn candidate(&self, req: SchemaRequest) -> Result<Candidate> {
        let ty =
            SchemaType::from_request(req.schema_type.as_deref()).map_err(Error::InvalidSchema)?;
        let mut refs = Vec::with_capacity(req.references.len());
        for r in req.references {
            let spec = if r.version == -1 {
                VersionSpec::Latest
            } else {
                VersionSpec::parse(&r.version.to_string())?
            };
            let found = self
                .find_version(&r.subject, spec, false)
                .await
                .map_err(|e| Error::InvalidSchema(format!("reference {:?}: {e}", r.name)))?;
            refs.push(Reference {
                version: found.version,
                ..r
            });
        }
        let deps = self.dependencies(&refs, 0).await?;
        let stored = schema::stored_text(ty, &req.schema).map_err(Error::InvalidSchema)?;
        let parsed = schema::parse(ty, &stored, &deps).map_err(Error::InvalidSchema)?;
        let fingerprint = schema::fingerprint(ty, &stored, &refs);
        Ok(Candidate {
            ty,
            stored,
            refs,
            parsed,
            fingerprint,
        })
    }

    /// The texts of `refs` and of what they refer to, dependencies first.
    async fn dependencies(&self, refs: &[Reference], depth: usize) -> Result<Vec<Dependency>> {
        if refs.is_empty() {
            return Ok(Vec::new());
        }
        if depth >= MAX_REFERENCE_DEPTH {
            return Err(Error::InvalidSchema(format!(
                "references nest deeper than {MAX_REFERENCE_DEPTH} levels"
            )));
        }
        let mut out: Vec<Dependency> = Vec::new();
        for r in refs {
            let row = self
                .find_version(&r.subject, VersionSpec::Number(r.version), true)
                .await
                .map_err(|e| Error::InvalidSchema(format!("reference {:?}: {e}", r.name)))?;
            let (stored, _, inner) = self.schema(row.schema_id).await?;
            for d in Box::pin(self.dependencies(&inner, depth + 1)).await? {
                if !out.iter().any(|o| o.name == d.name) {
                    out.push(d);
                }
            }
            if !out.iter().any(|o| o.name == r.name) {
                out.push(Dependency {
                    name: r.name.clone(),
                    text: stored.schema,
                });
            }
        }
        Ok(out)
    }

    /// The version in `history` holding the candidate's schema.
    async fn matching(
        &self,
        history: &[SubjectVersion],
        candidate: &Candidate,
        deleted: bool,
    ) -> Result<Option<SubjectVersion>> {
        let Some(id) = self
            .store
            .registry_schema_id(&candidate.fingerprint)
            .await?
        else {
            return Ok(None);
        };
        Ok(history
            .iter()
            .rev()
            .find(|v| v.schema_id == id && (deleted || !v.deleted))
            .cloned())
    }

    /// What `level` says about `new` after the live versions in `history`.
    async fn check(
        &self,
        level: Level,
        history: &[SubjectVersion],
        new: &Parsed,
    ) -> Result<Vec<String>> {
        if level == Level::None {
            return Ok(Vec::new());
        }
        let mut previous = Vec::new();
        for v in history.iter().filter(|v| !v.deleted) {
            let (stored, ty, refs) = self.schema(v.schema_id).await?;
            let deps = self.dependencies(&refs, 0).await?;
            let parsed = schema::parse(ty, &stored.schema, &deps)
                .map_err(|e| Error::Corrupt(format!("stored schema {}: {e}", stored.id)))?;
            previous.push(parsed);
        }
        Ok(level.check(new, &previous))
    }

    /// 42206 when a live schema refers to `subject`'s `version`.
    async fn not_referenced(&self, subject: &str, version: i64) -> Result<()> {
        let by = self
            .referenced_by(subject, VersionSpec::Number(version))
            .await
            .or_else(|e| match e {
                Error::VersionNotFound { .. } | Error::SubjectNotFound(_) => Ok(Vec::new()),
                e => Err(e),
            })?;
        if by.is_empty() {
            Ok(())
        } else {
            Err(Error::ReferenceExists {
                subject: subject.into(),
                version,
            })
        }
    }
}

/// Whether a subject (or the registry) takes writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Registrations and deletes are allowed.
    ReadWrite,
    /// Only reads.
    ReadOnly,
}

impl Mode {
    fn parse(s: &str) -> Option<Mode> {
        match s.to_ascii_uppercase().as_str() {
            "READWRITE" => Some(Mode::ReadWrite),
            "READONLY" => Some(Mode::ReadOnly),
            _ => None,
        }
    }

    /// The name the API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::ReadWrite => "READWRITE",
            Mode::ReadOnly => "READONLY",
        }
    }
}

fn decode_row(stored: &StoredSchema) -> Result<(SchemaType, Vec<Reference>)> {
    let ty = SchemaType::from_request(Some(&stored.schema_type))
        .map_err(|e| Error::Corrupt(format!("schema {}: {e}", stored.id)))?;
    let refs = serde_json::from_str(&stored.refs)
        .map_err(|e| Error::Corrupt(format!("references of schema {}: {e}", stored.id)))?;
    Ok((ty, refs))
}
