//! A topic part's pump handing a batch to N channels on its own shard:
//! `Channel::put_batch` per channel, which clones every message (the body
//! is a shared `Bytes`, never copied) into the channel's memory queue. This
//! is the local branch of `nsq_broker::topic`'s pump, run on real
//! `Channel`s with no consumer attached, so the messages stay queued; the
//! queues are emptied between samples, outside the timing. Building a whole
//! `Topic` needs a running `Shard`, which adds setup and nothing to the path.
//!
//! `Channel::create` spawns the channel's timer task, so everything runs
//! inside one glommio executor (the timer tasks never get to run: the
//! benchmark does not yield).

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use nsq_bench::messages;
use nsq_broker::channel::Channel;
use nsq_broker::config::Options;
use nsq_broker::ctx::ShardCtx;
use nsq_broker::queue_store::{QueueFiles, Start};

/// Messages per pump step (`PUMP_BATCH` in `nsq_broker::topic`).
const BATCH: usize = 1024;

fn topic_fanout_n_channels(c: &mut Criterion) {
    let mut group = c.benchmark_group("topic_fanout_n_channels");
    // Per published message (each delivered to every channel).
    group.throughput(Throughput::Elements(BATCH as u64));
    let opts = Arc::new(Options::default());
    // The batch stays below 3/4 of the memory queue, so the channels' disk
    // queues are never opened.
    let data_path = std::env::temp_dir().join(format!("nsq-bench-fanout-{}", std::process::id()));
    if let Err(err) = std::fs::create_dir_all(&data_path) {
        eprintln!("topic_fanout: cannot create {}: {err}", data_path.display());
        std::process::exit(1);
    }
    let ctx = Rc::new(ShardCtx::new(0, opts, data_path.clone()));
    let topic: Rc<str> = Rc::from("bench");
    let batch = messages(BATCH, 200);
    for n in [1usize, 2, 4, 8] {
        let channels: Vec<Rc<Channel>> = (0..n)
            .map(|i| {
                // No file: the disk queue stays absent (never needed here).
                let start = Start::Listed(QueueFiles::default());
                Channel::create(topic.clone(), &format!("ch{i}"), ctx.clone(), start)
            })
            .collect();
        group.bench_function(format!("{n}ch"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    for channel in &channels {
                        channel.put_batch(&batch);
                    }
                    total += start.elapsed();
                    for channel in &channels {
                        channel.empty();
                    }
                }
                total
            })
        });
        for channel in &channels {
            channel.delete();
        }
    }
    group.finish();
    let _ = std::fs::remove_dir_all(&data_path);
}

fn main() {
    let executor = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .io_memory(nsq_io::runtime::IO_MEMORY)
        .make();
    let executor = match executor {
        Ok(executor) => executor,
        Err(err) => {
            eprintln!("topic_fanout: cannot start a glommio executor: {err}");
            std::process::exit(1);
        }
    };
    executor.run(async {
        let mut criterion = Criterion::default().configure_from_args();
        topic_fanout_n_channels(&mut criterion);
        criterion.final_summary();
    });
}
