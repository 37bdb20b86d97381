//! Names that say what they are. A session, an account, a queue, a task and a
//! conversation are all spelled as strings in `ccl.toml`, in file names and on tmux's
//! command line, but they are different things: a function that takes a
//! [`SessionName`] cannot be handed an account by mistake.
//!
//! Each is a thin wrapper over `String` that serializes as the plain string
//! (`state.json`, traces and `ccl status --json` read as they always did), borrows as
//! `&str` (so a `BTreeMap<SessionName, _>` is looked up with a `&str`), and compares
//! with plain strings.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;

use serde::{Deserialize, Serialize};

macro_rules! name {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(name: impl Into<String>) -> $name {
                $name(name.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        /// A map keyed by names is also looked up with a `&String`: both compare as the
        /// same text.
        impl Borrow<String> for $name {
            fn borrow(&self) -> &String {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<std::path::Path> for $name {
            fn as_ref(&self) -> &std::path::Path {
                std::path::Path::new(&self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> $name {
                $name(s)
            }
        }

        impl From<&String> for $name {
            fn from(s: &String) -> $name {
                $name(s.clone())
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> $name {
                $name(s.to_string())
            }
        }

        impl From<&$name> for $name {
            fn from(s: &$name) -> $name {
                s.clone()
            }
        }

        impl From<$name> for String {
            fn from(s: $name) -> String {
                s.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        impl PartialEq<$name> for str {
            fn eq(&self, other: &$name) -> bool {
                self == other.0
            }
        }

        impl PartialEq<$name> for &str {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }
    };
}

name!(
    /// A tmux session ccl manages: a pool name (`ccl-auto-11`) or a dedicated one.
    SessionName
);
name!(
    /// An account's name from `ccl.toml` (`[[account]] name`).
    AccountName
);
name!(
    /// A queue's name from `ccl.toml` (`[[queue]] name`).
    QueueName
);
name!(
    /// A task's file name in its queue (`20261124-091500-fix-tests.md`).
    TaskName
);
name!(
    /// A Claude Code conversation (session) id: the UUID `claude --resume` takes.
    ConversationId
);

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn a_name_serializes_as_its_plain_string_and_looks_up_by_str() {
        let name = SessionName::from("ccl-auto-11");
        assert_eq!(serde_json::to_string(&name).unwrap(), "\"ccl-auto-11\"");
        let back: SessionName = serde_json::from_str("\"ccl-auto-11\"").unwrap();
        assert_eq!(back, name);
        let mut map = BTreeMap::new();
        map.insert(name.clone(), 1);
        assert_eq!(map.get("ccl-auto-11"), Some(&1));
        assert_eq!(name, "ccl-auto-11");
        assert_eq!("ccl-auto-11", name);
        assert_eq!(format!("{name}"), "ccl-auto-11");
        assert!(name.starts_with("ccl-auto-"), "derefs to str");
    }
}
