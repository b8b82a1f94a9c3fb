//! Control operations applied to this shard's state: topic and channel
//! lifecycle, pause, stats, metadata, nsqlookupd settings. They arrive from
//! other shards through `crate::inbox`, or from this shard's own HTTP and
//! protocol handlers through `Shard::call`.

use std::rc::Rc;

use super::tasks::lookupd::Event;
use super::Shard;
use crate::channel::Channel;
use crate::peers::msg::{ControlOp, ControlReply};
use crate::topic::{ChannelRef, Topic};

impl Shard {
    /// Apply one control operation on this shard.
    pub async fn handle_control(self: &Rc<Self>, op: ControlOp) -> ControlReply {
        match op {
            // Topics.
            ControlOp::AddTopicPart(name) => {
                self.add_topic_part(&name);
                ControlReply::Ok
            }
            ControlOp::StartTopic(name) => self.with_topic(&name, |t| t.start()),
            ControlOp::DeleteTopic(name) => self.delete_topic_part(&name),
            ControlOp::EmptyTopic(name) => self.with_topic(&name, |t| t.empty()),
            ControlOp::PauseTopic(name, paused) => {
                self.request_metadata_save();
                self.with_topic(&name, |t| t.set_paused(paused))
            }
            // Channels: announcements from their owner...
            ControlOp::AddRemoteChannel {
                topic,
                channel,
                owner,
            } => self.add_remote_channel(&topic, &channel, owner),
            ControlOp::RemoveRemoteChannel { topic, channel } => {
                self.remove_remote_channel(&topic, &channel)
            }
            // ... and requests routed to their owner.
            ControlOp::GetOrCreateChannel(topic, channel) => {
                self.get_or_create_channel(&topic, &channel).await;
                ControlReply::Ok
            }
            ControlOp::DeleteChannel(topic, channel) => {
                match self.delete_owned_channel(&topic, &channel).await {
                    true => ControlReply::Ok,
                    false => ControlReply::NotFound,
                }
            }
            ControlOp::EmptyChannel(topic, channel) => {
                self.with_channel(&topic, &channel, |c| c.empty())
            }
            ControlOp::PauseChannel(topic, channel, paused) => {
                self.request_metadata_save();
                self.with_channel(&topic, &channel, |c| c.set_paused(paused))
            }
            // nsqlookupd (shard 0 holds the peers).
            ControlOp::LookupdChannels(topic) => self.lookupd_channels(&topic).await,
            ControlOp::SetLookupdAddresses(addrs) => self.set_lookupd_addresses(addrs),
            // Node-wide state.
            ControlOp::Metadata => ControlReply::Metadata(self.metadata_part()),
            ControlOp::PersistMetadata => {
                self.metadata_wake.notify();
                ControlReply::Ok
            }
            ControlOp::Barrier => ControlReply::Ok,
            ControlOp::Health => match self.health_error() {
                Some(err) => ControlReply::Unhealthy(err),
                None => ControlReply::Ok,
            },
            ControlOp::Stats {
                topic,
                channel,
                include_clients,
            } => {
                let (topics, producers) =
                    self.stats(topic.as_deref(), channel.as_deref(), include_clients);
                ControlReply::Stats(topics, producers)
            }
            ControlOp::Metrics { include_clients } => {
                let (topics, _) = self.stats(None, None, include_clients);
                let mut figures = self.ctx.counters.figures(
                    self.id(),
                    self.connection_count(),
                    self.peers.mesh_counts(),
                );
                figures.messages_in = topics
                    .iter()
                    .fold(0u64, |sum, t| sum.saturating_add(t.message_count));
                ControlReply::Metrics(topics, Box::new(figures))
            }
        }
    }

    fn delete_topic_part(self: &Rc<Self>, name: &str) -> ControlReply {
        if !self.remove_topic_part(name) {
            return ControlReply::NotFound;
        }
        crate::log_info!("TOPIC({name}): deleted");
        self.request_metadata_save();
        ControlReply::Ok
    }

    /// The owner created `channel`: publishes here now reach it too.
    fn add_remote_channel(
        self: &Rc<Self>,
        topic: &str,
        channel: &str,
        owner: usize,
    ) -> ControlReply {
        let part = self.add_topic_part(topic);
        if !part.has_channel(channel) {
            self.notify_lookup(Event::Register(
                topic.to_string(),
                Some(channel.to_string()),
            ));
        }
        part.add_channel(ChannelRef::Remote {
            shard: owner,
            name: Rc::from(channel),
        });
        ControlReply::Ok
    }

    /// The owner deleted `channel`; an ephemeral topic left without
    /// channels goes too.
    fn remove_remote_channel(&self, topic: &str, channel: &str) -> ControlReply {
        if let Some(part) = self.topic(topic) {
            if part.has_channel(channel) {
                self.notify_lookup(Event::Unregister(
                    topic.to_string(),
                    Some(channel.to_string()),
                ));
            }
            if part.remove_channel(channel) && part.ephemeral {
                self.remove_topic_part(topic);
            }
        }
        ControlReply::Ok
    }

    /// The channels nsqlookupd knows for `topic` (shard 0; empty elsewhere).
    async fn lookupd_channels(&self, topic: &str) -> ControlReply {
        let names = match &self.lookup {
            Some(lookup) => {
                let configured = !self.lookupd_addresses.borrow().is_empty();
                lookup.topic_channels(topic, configured).await
            }
            None => Vec::new(),
        };
        ControlReply::Channels(names)
    }

    /// `PUT /config/nsqlookupd_tcp_addresses`, applied on every shard.
    fn set_lookupd_addresses(&self, addrs: Vec<String>) -> ControlReply {
        if let Some(lookup) = &self.lookup {
            lookup.reconcile(&addrs);
        }
        *self.lookupd_addresses.borrow_mut() = addrs;
        ControlReply::Ok
    }

    fn with_topic(&self, name: &str, f: impl FnOnce(&Topic)) -> ControlReply {
        match self.topic(name) {
            Some(t) => {
                f(&t);
                ControlReply::Ok
            }
            None => ControlReply::NotFound,
        }
    }

    fn with_channel(&self, topic: &str, channel: &str, f: impl FnOnce(&Channel)) -> ControlReply {
        match self.topic(topic).and_then(|t| t.local_channel(channel)) {
            Some(c) => {
                f(&c);
                ControlReply::Ok
            }
            None => ControlReply::NotFound,
        }
    }
}
