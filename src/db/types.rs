//! Typed column values: row ids, statuses and kinds, each stored as the same TEXT as ever.
//!
//! An id is a ULID newtype per table, so a function taking a user and an audio cannot be
//! handed them the other way round. A status or kind is an enum whose wire string (JSON and
//! SQLite alike) is the one the schema's `CHECK` allows. A stored value that does not parse
//! is a conversion error naming the value, like a column of the wrong type.

use std::fmt;
use std::str::FromStr;

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use serde::{Deserialize, Serialize};
use ulid::Ulid;

/// A stored or submitted string that is none of an enum's values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} `{value}` is not one of {}", allowed.join(", "))]
pub struct UnknownValue {
    pub what: &'static str,
    pub value: String,
    pub allowed: &'static [&'static str],
}

/// A closed set of TEXT values: `as_str`, `FromStr`, `Display`, serde and SQLite all use
/// the same strings.
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every stored string, in declaration order.
            pub const ALLOWED: &'static [&'static str] = &[$($text),+];

            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text),+
                }
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;

            fn from_str(s: &str) -> Result<Self, UnknownValue> {
                match s {
                    $($text => Ok(Self::$variant),)+
                    _ => Err(UnknownValue {
                        what: $what,
                        value: s.to_owned(),
                        allowed: Self::ALLOWED,
                    }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::Borrowed(ValueRef::Text(self.as_str().as_bytes())))
            }
        }

        impl FromSql for $name {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                value
                    .as_str()?
                    .parse()
                    .map_err(|e: UnknownValue| FromSqlError::Other(Box::new(e)))
            }
        }
    };
}

text_enum! {
    /// Where an audio is in its life (`audios.status`).
    AudioStatus, "audio status" {
        Queued = "queued",
        Running = "running",
        Succeeded = "succeeded",
        Failed = "failed",
        Canceled = "canceled",
    }
}

impl AudioStatus {
    /// Still being made: a job may yet change it.
    pub const fn is_live(self) -> bool {
        matches!(self, Self::Queued | Self::Running)
    }

    /// Finished one way or another; nothing changes it but a retry.
    pub const fn is_final(self) -> bool {
        !self.is_live()
    }
}

text_enum! {
    /// What made an audio (`audios.kind`).
    AudioKind, "audio kind" {
        Tts = "tts",
        Podcast = "podcast",
        Upload = "upload",
    }
}

text_enum! {
    /// What an account may do (`users.role`).
    Role, "role" {
        User = "user",
        Admin = "admin",
    }
}

text_enum! {
    /// Where a queued job is (`jobs.status`). Job kinds stay strings: the queue runs any
    /// kind a handler is registered for, and fails a kind nobody handles.
    JobStatus, "job status" {
        Queued = "queued",
        Running = "running",
        Succeeded = "succeeded",
        Failed = "failed",
        Canceled = "canceled",
    }
}

/// A row id: a ULID stored as its 26-character TEXT, serialized as that string.
macro_rules! ulid_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[repr(transparent)]
        pub struct $name(Ulid);

        impl $name {
            /// A new id from the database's generator, so ids sort in the order they were made.
            pub fn new(db: &crate::db::Db) -> Self {
                Self(db.new_id())
            }

            pub const fn from_ulid(id: Ulid) -> Self {
                Self(id)
            }

            pub const fn ulid(self) -> Ulid {
                self.0
            }
        }

        impl From<Ulid> for $name {
            fn from(id: Ulid) -> Self {
                Self(id)
            }
        }

        impl From<$name> for Ulid {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = ulid::DecodeError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Ulid::from_string(s).map(Self)
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut buf = [0; ulid::ULID_LEN];
                s.serialize_str(self.0.array_to_str(&mut buf))
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }

        impl ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.0.to_string()))
            }
        }

        impl FromSql for $name {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                let text = value.as_str()?;
                Ulid::from_string(text).map(Self).map_err(|e| {
                    FromSqlError::Other(format!("id `{text}` is not a ULID: {e}").into())
                })
            }
        }
    };
}

text_enum! {
    /// Through which API a billable call came (`usage_logs.source`).
    UsageSource, "usage source" {
        /// The web app and the `/api` routes.
        App = "app",
        /// The OpenAI-compatible API under `/v1`.
        Gateway = "gateway",
    }
}

text_enum! {
    /// Where a transcript is in its life (`transcripts.status`).
    TranscriptStatus, "transcript status" {
        Queued = "queued",
        Running = "running",
        Succeeded = "succeeded",
        Failed = "failed",
    }
}

impl TranscriptStatus {
    /// Still being made: its job may yet change it.
    pub const fn is_live(self) -> bool {
        matches!(self, Self::Queued | Self::Running)
    }
}

text_enum! {
    /// How urgent an alert is (`alerts.severity`), from most to least.
    Severity, "severity" {
        Critical = "critical",
        Warning = "warning",
        Info = "info",
    }
}

ulid_id!(
    /// `users.id`
    UserId
);
ulid_id!(
    /// `alerts.id`
    AlertId
);
ulid_id!(
    /// `audios.id`
    AudioId
);
ulid_id!(
    /// `jobs.id`
    JobId
);
ulid_id!(
    /// `podcasts.id`
    PodcastId
);
ulid_id!(
    /// `episodes.id`
    EpisodeId
);
ulid_id!(
    /// `sessions.id`
    SessionId
);
ulid_id!(
    /// `api_tokens.id`
    TokenId
);
ulid_id!(
    /// `transcripts.id`
    TranscriptId
);

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    fn conn() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (v TEXT) STRICT")
            .unwrap();
        conn
    }

    /// Stores `value`, then returns the raw TEXT stored and the value read back.
    fn round_trip<T: ToSql + FromSql>(conn: &Connection, value: T) -> (String, T) {
        conn.execute("DELETE FROM t", []).unwrap();
        conn.execute("INSERT INTO t (v) VALUES (?1)", [&value])
            .unwrap();
        conn.query_row("SELECT v, v FROM t", [], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
    }

    fn enum_round_trips<T>(all: &[T])
    where
        T: ToSql + FromSql + Copy + PartialEq + fmt::Debug + fmt::Display + FromStr,
    {
        let conn = conn();
        for &value in all {
            let (stored, back) = round_trip(&conn, value);
            assert_eq!(back, value);
            assert_eq!(stored, value.to_string());
            assert!(stored.parse::<T>().ok() == Some(value));
        }
    }

    #[test]
    fn every_status_and_kind_is_stored_as_the_string_the_schema_allows() {
        use AudioKind as K;
        use AudioStatus as S;
        enum_round_trips(&[S::Queued, S::Running, S::Succeeded, S::Failed, S::Canceled]);
        enum_round_trips(&[K::Tts, K::Podcast, K::Upload]);
        use JobStatus as J;
        enum_round_trips(&[J::Queued, J::Running, J::Succeeded, J::Failed, J::Canceled]);
        let conn = conn();
        assert_eq!(round_trip(&conn, S::Succeeded).0, "succeeded");
        assert_eq!(round_trip(&conn, S::Canceled).0, "canceled");
        assert_eq!(round_trip(&conn, K::Tts).0, "tts");
        assert_eq!(round_trip(&conn, J::Running).0, "running");
        enum_round_trips(&[Role::User, Role::Admin]);
        assert_eq!(round_trip(&conn, Role::Admin).0, "admin");
        assert_eq!(
            S::ALLOWED,
            ["queued", "running", "succeeded", "failed", "canceled"]
        );
        assert_eq!(K::ALLOWED, ["tts", "podcast", "upload"]);
    }

    #[test]
    fn the_schema_s_check_constraints_allow_exactly_the_enums_strings() {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::db::migrations::apply(&mut conn).unwrap();
        let check = |table: &str, column: &str| -> String {
            let sql: String = conn
                .query_row(
                    "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?1",
                    [table],
                    |r| r.get(0),
                )
                .unwrap();
            let start = sql.find(&format!("CHECK ({column} IN (")).unwrap();
            let rest = &sql[start..];
            rest[..rest.find("))").unwrap()].to_string()
        };
        let listed = |allowed: &[&str]| {
            allowed
                .iter()
                .map(|s| format!("'{s}'"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        assert!(check("audios", "status").ends_with(&listed(AudioStatus::ALLOWED)));
        assert!(check("audios", "kind").ends_with(&listed(AudioKind::ALLOWED)));
        assert!(check("jobs", "status").ends_with(&listed(JobStatus::ALLOWED)));
        assert!(check("users", "role").ends_with(&listed(Role::ALLOWED)));
        assert!(check("alerts", "severity").ends_with(&listed(Severity::ALLOWED)));
        assert!(check("transcripts", "status").ends_with(&listed(TranscriptStatus::ALLOWED)));
        assert!(check("usage_logs", "source").ends_with(&listed(UsageSource::ALLOWED)));
    }

    #[test]
    fn an_unknown_stored_string_is_a_conversion_error_naming_it() {
        let conn = conn();
        conn.execute("INSERT INTO t (v) VALUES ('paused')", [])
            .unwrap();
        let err = conn
            .query_row("SELECT v FROM t", [], |r| r.get::<_, AudioStatus>(0))
            .unwrap_err();
        assert!(
            matches!(err, rusqlite::Error::FromSqlConversionFailure(0, _, _)),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(message.contains("`paused`"), "{message}");
        assert!(
            message.contains("queued, running, succeeded, failed, canceled"),
            "{message}"
        );
        let err = conn
            .query_row("SELECT v FROM t", [], |r| r.get::<_, AudioId>(0))
            .unwrap_err();
        assert!(err.to_string().contains("`paused`"), "{err}");
    }

    #[test]
    fn enums_serialize_as_their_stored_string() {
        assert_eq!(
            serde_json::to_value(AudioStatus::Succeeded).unwrap(),
            serde_json::json!("succeeded")
        );
        assert_eq!(
            serde_json::from_value::<AudioKind>(serde_json::json!("podcast")).unwrap(),
            AudioKind::Podcast
        );
        assert!(serde_json::from_value::<AudioKind>(serde_json::json!("video")).is_err());
    }

    #[test]
    fn an_id_is_stored_as_the_same_text_as_a_bare_ulid_and_reads_back_from_it() {
        let conn = conn();
        let ulid = Ulid::generate();
        // The way ids were written before they had types of their own.
        conn.execute("INSERT INTO t (v) VALUES (?1)", [ulid.to_string()])
            .unwrap();
        let read: AudioId = conn.query_row("SELECT v FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(read.ulid(), ulid);
        let (stored, back) = round_trip(&conn, AudioId::from(ulid));
        assert_eq!(stored, ulid.to_string());
        assert_eq!(stored.len(), 26);
        assert_eq!(back, AudioId::from(ulid));
        let typ: String = conn
            .query_row("SELECT typeof(v) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(typ, "text");
    }

    #[test]
    fn each_table_s_id_is_a_type_of_its_own() {
        use std::any::TypeId;
        let ids = [
            TypeId::of::<UserId>(),
            TypeId::of::<AudioId>(),
            TypeId::of::<JobId>(),
            TypeId::of::<PodcastId>(),
            TypeId::of::<EpisodeId>(),
            TypeId::of::<SessionId>(),
            TypeId::of::<TokenId>(),
            TypeId::of::<AlertId>(),
            TypeId::of::<TranscriptId>(),
            TypeId::of::<Ulid>(),
        ];
        for (i, a) in ids.iter().enumerate() {
            assert!(ids[i + 1..].iter().all(|b| a != b), "id type {i} is shared");
        }
        assert_eq!(std::mem::size_of::<AudioId>(), std::mem::size_of::<Ulid>());
    }

    #[test]
    fn an_id_serializes_as_its_ulid_string() {
        let ulid = Ulid::generate();
        let id = UserId::from(ulid);
        assert_eq!(
            serde_json::to_value(id).unwrap(),
            serde_json::json!(ulid.to_string())
        );
        assert_eq!(
            serde_json::from_value::<UserId>(serde_json::json!(ulid.to_string())).unwrap(),
            id
        );
        assert_eq!(id.to_string().parse::<UserId>().unwrap(), id);
        assert!("nope".parse::<UserId>().is_err());
    }
}
