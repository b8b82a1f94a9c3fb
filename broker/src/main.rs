//! `nsqd` binary: parse flags, start the shards, wait for a signal.

use nsq_broker::config::{ConfigError, Options};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let opts = match Options::parse_args(std::env::args().skip(1)) {
        Ok(opts) => opts,
        Err(ConfigError::Help(usage)) => {
            eprintln!("{usage}");
            std::process::exit(0);
        }
        Err(e) => {
            eprintln!("nsqd: {e}");
            std::process::exit(e.exit_code());
        }
    };
    if opts.version {
        println!("{}", Options::version_string());
        return;
    }
    nsq_broker::log::init(opts.log_level, &opts.log_prefix);
    nsq_daemon::signals::block_signals();
    let prefix = opts.log_prefix.clone();
    if let Err(e) = nsq_broker::server::run(opts) {
        eprintln!("{prefix}FATAL: {e:#}");
        std::process::exit(1);
    }
}
