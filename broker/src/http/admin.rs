//! `/info`, `/stats`, `/config/:opt` and the topic/channel admin actions.
//!
//! Topic actions run on every shard (each holds a part of the topic);
//! channel actions run on the channel's owner shard.

use std::rc::Rc;

use nsq_io::http::Request;
use serde::Serialize;

use super::Reply;
use crate::config::NSQD_VERSION as VERSION;
use crate::metrics::exposition;
use crate::metrics::process::ProcessFigures;
use crate::peers::msg::{ControlOp, ControlReply};
use crate::peers::routing;
use crate::shard::Shard;
use crate::stats::{self, snapshot};

#[derive(Serialize)]
struct Info<'a> {
    version: &'a str,
    broadcast_address: &'a str,
    hostname: String,
    http_port: i64,
    tcp_port: i64,
    start_time: i64,
    max_heartbeat_interval: i64,
    max_output_buffer_size: i64,
    max_output_buffer_timeout: i64,
    max_deflate_level: i64,
}

/// GET /info (durations in ns, as Go's time.Duration marshals).
pub fn info(shard: &Rc<Shard>) -> Reply {
    let opts = shard.opts();
    Reply::json(&Info {
        version: VERSION,
        broadcast_address: &opts.broadcast_address,
        hostname: nsq_daemon::host::hostname(),
        http_port: shard.listen.http.map(|a| i64::from(a.port())).unwrap_or(-1),
        tcp_port: i64::from(shard.listen.tcp.port()),
        start_time: shard.start_time,
        max_heartbeat_interval: opts.max_heartbeat_interval.as_nanos() as i64,
        max_output_buffer_size: opts.max_output_buffer_size as i64,
        max_output_buffer_timeout: opts.max_output_buffer_timeout.as_nanos() as i64,
        max_deflate_level: opts.max_deflate_level as i64,
    })
}

/// The first disk error any shard reports, if the node is unhealthy.
pub async fn health(shard: &Rc<Shard>) -> Option<String> {
    shard
        .call_all(ControlOp::Health)
        .await
        .into_iter()
        .find_map(|reply| match reply {
            ControlReply::Unhealthy(err) => Some(err),
            _ => None,
        })
}

/// nsqd's boolParams: "true"/"1" and "false"/"0"; anything else = default.
fn bool_param(req: &Request, name: &str, default: bool) -> bool {
    match req.query_get(name) {
        Some("true" | "1") => true,
        Some("false" | "0") => false,
        _ => default,
    }
}

/// GET /stats: gather every shard's part, merge by name.
pub async fn stats(shard: &Rc<Shard>, req: &Request) -> Reply {
    let topic = req.query_get("topic").filter(|t| !t.is_empty());
    let channel = req.query_get("channel").filter(|c| !c.is_empty());
    let include_clients = bool_param(req, "include_clients", true);
    let include_mem = bool_param(req, "include_mem", true);
    let replies = shard
        .call_all(ControlOp::Stats {
            topic: topic.map(str::to_string),
            channel: channel.map(str::to_string),
            include_clients,
        })
        .await;
    let mut parts = Vec::new();
    let mut producers = Vec::new();
    for reply in replies {
        if let ControlReply::Stats(topics, clients) = reply {
            parts.push(topics);
            producers.extend(clients);
        }
    }
    let mut merged = snapshot::merge(parts);
    snapshot::with_latency(
        &mut merged,
        &shard.opts().e2e_processing_latency_percentiles,
    );
    // nsqd returns early (topics and producers null) for an unknown topic.
    let unknown_topic = topic.is_some() && merged.is_empty();
    let topics = snapshot::filter(merged, topic, channel);
    snapshot::filter_producers(&mut producers, topic);
    let topics = (!unknown_topic).then_some(topics);
    // nsqd lists producers only with clients included.
    if unknown_topic || !include_clients {
        producers.clear();
    }
    let doc = snapshot::StatsDoc {
        version: VERSION.to_string(),
        health: match health(shard).await {
            None => "OK".to_string(),
            Some(err) => format!("NOK - {err}"),
        },
        start_time: shard.start_time,
        topics,
        // nsqd's Go runtime figures; the one with an honest equivalent
        // here is the heap's size (mimalloc's committed memory). The GC
        // fields stay 0: there is no garbage collector.
        memory: include_mem.then(|| snapshot::MemStats {
            heap_in_use_bytes: crate::metrics::process::allocator_commit().0.unwrap_or(0),
            ..snapshot::MemStats::default()
        }),
        producers: (!producers.is_empty()).then_some(producers),
    };
    if req.query_get("format") == Some("json") {
        Reply::json(&doc)
    } else {
        Reply::Text(stats::render_text(&doc, crate::message::now_secs()).into_bytes())
    }
}

/// GET /metrics (ours): Prometheus text, gathered from every shard as
/// /stats is; the process figures are read on the blocking pool.
pub async fn metrics(shard: &Rc<Shard>) -> Reply {
    let opts = shard.opts();
    let replies = shard
        .call_all(ControlOp::Metrics {
            include_clients: opts.metrics_per_client,
        })
        .await;
    let mut parts = Vec::new();
    let mut figures = Vec::new();
    for reply in replies {
        if let ControlReply::Metrics(topics, shard_figures) = reply {
            parts.push(topics);
            figures.push(*shard_figures);
        }
    }
    figures.sort_by_key(|f| f.shard);
    let mut topics = snapshot::merge(parts);
    snapshot::with_latency(&mut topics, &opts.e2e_processing_latency_percentiles);
    let data_path = shard.data_path().to_path_buf();
    let process = shard
        .ctx
        .counters
        .blocking(move || ProcessFigures::read(&data_path))
        .await;
    let text = exposition::render(&exposition::Scrape {
        version: VERSION,
        healthy: health(shard).await.is_none(),
        start_time: shard.start_time,
        topics: &topics,
        percentiles: &opts.e2e_processing_latency_percentiles,
        shards: &figures,
        mesh_capacity: crate::server::MESH_CAPACITY,
        process,
        per_client: opts.metrics_per_client,
    });
    Reply::Typed(exposition::CONTENT_TYPE, text.into_bytes())
}

fn topic_arg(req: &Request) -> Result<&str, Reply> {
    req.query_get("topic")
        .ok_or(Reply::Err(400, "MISSING_ARG_TOPIC"))
}

/// nsqd's GetTopicChannelArgs.
fn topic_channel_args(req: &Request) -> Result<(&str, &str), Reply> {
    nsq_daemon::http::topic_channel_args(req).map_err(|message| Reply::Err(400, message))
}

fn done(reply: ControlReply, not_found: &'static str) -> Reply {
    match reply {
        ControlReply::NotFound => Reply::Err(404, not_found),
        _ => Reply::Text(Vec::new()),
    }
}

/// POST /topic/create
pub async fn topic_create(shard: &Rc<Shard>, req: &Request) -> Reply {
    let topic = match topic_arg(req) {
        Ok(t) => t,
        Err(r) => return r,
    };
    if !nsq_proto::names::is_valid_topic_name(topic) {
        return Reply::Err(400, "INVALID_TOPIC");
    }
    shard.create_topic_and_wait(topic).await;
    Reply::Text(Vec::new())
}

/// Run a topic action on every shard; 404 if no shard knows the topic.
async fn on_all_shards(shard: &Rc<Shard>, op: ControlOp) -> Reply {
    let replies = shard.call_all(op).await;
    if replies.iter().all(|r| matches!(r, ControlReply::NotFound)) {
        Reply::Err(404, "TOPIC_NOT_FOUND")
    } else {
        Reply::Text(Vec::new())
    }
}

/// POST /topic/delete
pub async fn topic_delete(shard: &Rc<Shard>, req: &Request) -> Reply {
    match topic_arg(req) {
        Ok(topic) => on_all_shards(shard, ControlOp::DeleteTopic(topic.to_string())).await,
        Err(r) => r,
    }
}

/// POST /topic/empty
pub async fn topic_empty(shard: &Rc<Shard>, req: &Request) -> Reply {
    let topic = match topic_arg(req) {
        Ok(t) => t,
        Err(r) => return r,
    };
    if !nsq_proto::names::is_valid_topic_name(topic) {
        return Reply::Err(400, "INVALID_TOPIC");
    }
    on_all_shards(shard, ControlOp::EmptyTopic(topic.to_string())).await
}

/// POST /topic/pause and /topic/unpause
pub async fn topic_pause(shard: &Rc<Shard>, req: &Request, paused: bool) -> Reply {
    match topic_arg(req) {
        Ok(topic) => on_all_shards(shard, ControlOp::PauseTopic(topic.to_string(), paused)).await,
        Err(r) => r,
    }
}

/// Channel actions need an existing topic (404 TOPIC_NOT_FOUND) and run on
/// the channel's owner.
async fn on_owner(
    shard: &Rc<Shard>,
    req: &Request,
    op: impl FnOnce(String, String) -> ControlOp,
) -> Reply {
    let (topic, channel) = match topic_channel_args(req) {
        Ok(args) => args,
        Err(r) => return r,
    };
    if shard.topic(topic).is_none() {
        return Reply::Err(404, "TOPIC_NOT_FOUND");
    }
    let owner = routing::owner_of(topic, channel, shard.shards());
    let reply = shard
        .call(owner, op(topic.to_string(), channel.to_string()))
        .await;
    done(reply, "CHANNEL_NOT_FOUND")
}

/// POST /channel/create
pub async fn channel_create(shard: &Rc<Shard>, req: &Request) -> Reply {
    on_owner(shard, req, ControlOp::GetOrCreateChannel).await
}

/// POST /channel/delete
pub async fn channel_delete(shard: &Rc<Shard>, req: &Request) -> Reply {
    on_owner(shard, req, ControlOp::DeleteChannel).await
}

/// POST /channel/empty
pub async fn channel_empty(shard: &Rc<Shard>, req: &Request) -> Reply {
    on_owner(shard, req, ControlOp::EmptyChannel).await
}

/// POST /channel/pause and /channel/unpause
pub async fn channel_pause(shard: &Rc<Shard>, req: &Request, paused: bool) -> Reply {
    on_owner(shard, req, |t, c| ControlOp::PauseChannel(t, c, paused)).await
}

/// GET and PUT /config/:opt. PUT accepts what nsqd accepts: `log_level`
/// and `nsqlookupd_tcp_addresses` (a JSON array, applied on every shard).
pub async fn config(shard: &Rc<Shard>, req: &Request) -> Reply {
    let opt = req.path.trim_start_matches("/config/");
    if req.method == "PUT" {
        if req.body.is_empty() || req.body.len() as u64 > shard.opts().max_msg_size {
            return Reply::Err(413, "INVALID_VALUE");
        }
        match opt {
            "log_level" => {
                let text = String::from_utf8_lossy(&req.body);
                let Ok(level) = text.trim().parse::<crate::log::Level>() else {
                    return Reply::Err(400, "INVALID_VALUE");
                };
                crate::log::set_level(level);
                // nsqd answers with the option's new value: the level number.
                return Reply::Json((level as u8).to_string().into_bytes());
            }
            "nsqlookupd_tcp_addresses" => {
                let Ok(addrs) = serde_json::from_slice::<Vec<String>>(&req.body) else {
                    return Reply::Err(400, "INVALID_VALUE");
                };
                shard.call_all(ControlOp::SetLookupdAddresses(addrs)).await;
            }
            _ => return Reply::Err(400, "INVALID_OPTION"),
        }
    }
    if opt == "nsqlookupd_tcp_addresses" {
        return Reply::json(&*shard.lookupd_addresses.borrow());
    }
    match shard.opts().get_config_value(opt) {
        // nsqd's V1 writes Go strings raw and everything else as JSON.
        Some(serde_json::Value::String(s)) => Reply::Text(s.into_bytes()),
        Some(value) => Reply::Json(value.to_string().into_bytes()),
        None => Reply::Err(400, "INVALID_OPTION"),
    }
}
