//! `nsqd` binary: parse flags, start the shards, wait for a signal.

use nsq_broker::config::{ConfigError, Options};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_arena_eager_commit` (index 4 in the option enum of
/// both mimalloc v2 and v3; libmimalloc-sys names no constant for it).
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;

/// Commit arena memory as it is used, not when an arena is reserved: with
/// transparent huge pages on, an eagerly committed arena turns each first
/// touch into a resident 2 MiB page, so an idle nsqd held 21 MB of
/// anonymous memory (3 MB with this). It must be set before the first
/// allocation reserves the first arena, which happens before `main`: so it
/// runs as an ELF constructor (`.init_array`), as the `ctor` crate does.
extern "C" fn lazy_arena_commit() {
    // SAFETY: mi_option_set only stores the option's value.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0) };
}

#[used]
#[link_section = ".init_array"]
static LAZY_ARENA_COMMIT: extern "C" fn() = lazy_arena_commit;

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
