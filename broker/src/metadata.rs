//! `nsqd.dat`: which topics and channels exist and which are paused, in
//! nsqd's own JSON format, so an nsqd data directory can be reused.
//!
//! Written by shard 0 (the control-plane home) after every create, delete,
//! pause and unpause, and at exit: tmp file, fsync, rename, fsync of the
//! directory (nsqd skips that last step). The write runs on glommio's
//! blocking thread pool so an fsync never stalls shard 0's connections.
//! Ephemeral topics and channels are never written (as nsqd).

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// File name inside `--data-path`.
pub const FILE_NAME: &str = "nsqd.dat";

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    /// `null` when empty (Go nil slice); both accepted on load.
    #[serde(default)]
    pub topics: Option<Vec<TopicMeta>>,
    /// nsqd version that wrote it.
    #[serde(default)]
    pub version: String,
}

/// One topic.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TopicMeta {
    /// Topic name.
    pub name: String,
    /// Paused?
    #[serde(default)]
    pub paused: bool,
    /// `null` when the topic has no channel.
    #[serde(default)]
    pub channels: Option<Vec<ChannelMeta>>,
}

/// One channel.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChannelMeta {
    /// Channel name.
    pub name: String,
    /// Paused?
    #[serde(default)]
    pub paused: bool,
}

impl Metadata {
    /// Topics (and their channels) with valid, non-ephemeral names; nsqd
    /// skips invalid names on load.
    pub fn valid_topics(&self) -> Vec<TopicMeta> {
        let names = nsq_proto::names::is_valid_topic_name;
        let ephemeral = nsq_proto::names::is_ephemeral;
        self.topics
            .iter()
            .flatten()
            .filter(|t| names(&t.name) && !ephemeral(&t.name))
            .map(|t| TopicMeta {
                name: t.name.clone(),
                paused: t.paused,
                channels: Some(
                    t.channels
                        .iter()
                        .flatten()
                        .filter(|c| {
                            nsq_proto::names::is_valid_channel_name(&c.name) && !ephemeral(&c.name)
                        })
                        .cloned()
                        .collect(),
                ),
            })
            .collect()
    }

    /// Merge per-shard partial views (topic parts plus the channels each
    /// shard owns) into one document, sorted by name.
    pub fn merge(parts: Vec<Vec<TopicMeta>>) -> Metadata {
        let mut topics: Vec<TopicMeta> = Vec::new();
        for topic in parts.into_iter().flatten() {
            match topics.iter_mut().find(|t| t.name == topic.name) {
                Some(existing) => {
                    existing.paused |= topic.paused;
                    let channels = existing.channels.get_or_insert_with(Vec::new);
                    channels.extend(topic.channels.into_iter().flatten());
                }
                None => topics.push(topic),
            }
        }
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        for t in &mut topics {
            if let Some(channels) = &mut t.channels {
                channels.sort_by(|a, b| a.name.cmp(&b.name));
                channels.dedup_by(|a, b| a.name == b.name);
                if channels.is_empty() {
                    t.channels = None;
                }
            }
        }
        Metadata {
            topics: (!topics.is_empty()).then_some(topics),
            version: crate::config::NSQD_VERSION.to_string(),
        }
    }
}

/// Read `<data_path>/nsqd.dat`; `Ok(None)` when there is none yet.
pub fn load(data_path: &Path) -> io::Result<Option<Metadata>> {
    let path = data_path.join(FILE_NAME);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    serde_json::from_slice(&bytes).map(Some).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {e}", path.display()),
        )
    })
}

/// Write atomically: tmp, fsync, rename, fsync directory.
pub fn save(data_path: &Path, meta: &Metadata) -> io::Result<()> {
    let body = serde_json::to_vec(meta).map_err(io::Error::other)?;
    let path = data_path.join(FILE_NAME);
    let tmp: PathBuf = data_path.join(format!("{FILE_NAME}.{}.tmp", std::process::id()));
    {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(&body)?;
        file.sync_all()?;
    }
    fs::rename(&tmp, &path)?;
    fs::File::open(data_path)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(name: &str, paused: bool, channels: &[(&str, bool)]) -> TopicMeta {
        TopicMeta {
            name: name.into(),
            paused,
            channels: Some(
                channels
                    .iter()
                    .map(|(n, p)| ChannelMeta {
                        name: (*n).into(),
                        paused: *p,
                    })
                    .collect(),
            ),
        }
    }

    #[test]
    fn merge_and_nsqd_format() {
        let merged = Metadata::merge(vec![
            vec![topic("b", false, &[("c2", true)]), topic("a", false, &[])],
            vec![topic("b", false, &[("c1", false)]), topic("a", false, &[])],
        ]);
        let json = serde_json::to_string(&merged).unwrap();
        assert_eq!(
            json,
            r#"{"topics":[{"name":"a","paused":false,"channels":null},{"name":"b","paused":false,"channels":[{"name":"c1","paused":false},{"name":"c2","paused":true}]}],"version":"1.3.0"}"#
        );
        assert_eq!(
            serde_json::to_string(&Metadata::merge(vec![])).unwrap(),
            r#"{"topics":null,"version":"1.3.0"}"#
        );
    }

    #[test]
    fn load_skips_invalid_and_ephemeral_and_roundtrips() {
        let dir = std::env::temp_dir().join(format!("nsqd-meta-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        assert_eq!(load(&dir).unwrap(), None);
        fs::write(
            dir.join(FILE_NAME),
            r#"{"topics":[{"name":"ok","paused":true,"channels":[{"name":"c","paused":false},{"name":"e#ephemeral","paused":false},{"name":"bad!","paused":false}]},{"name":"x#ephemeral","channels":null},{"name":"bad name"}],"version":"1.3.0"}"#,
        )
        .unwrap();
        let meta = load(&dir).unwrap().unwrap();
        let topics = meta.valid_topics();
        assert_eq!(topics, vec![topic("ok", true, &[("c", false)])]);
        save(&dir, &Metadata::merge(vec![topics.clone()])).unwrap();
        assert_eq!(load(&dir).unwrap().unwrap().valid_topics(), topics);
        fs::write(dir.join(FILE_NAME), "{not json").unwrap();
        assert!(load(&dir).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }
}
