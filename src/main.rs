//! The `plinth` binary: arguments → library → report → exit code.

/// mimalloc instead of glibc's malloc: a large plan spent a quarter of its
/// time in malloc/free of small values.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    // `plinth plan | head`: a closed pipe ends the process quietly, as it
    // does for any Unix filter, instead of panicking in println!.
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of a signal at start-up,
    // before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // One rustls crypto provider (aws-lc-rs) for every TLS client of the
    // process, installed before any exists (see plinth::tls).
    plinth::tls::install_crypto_provider();
    // Deeply nested input is refused with a diagnostic long before this stack
    // could run out; the large stack is a second line of defence.
    let code =
        std::thread::Builder::new().name("plinth".into()).stack_size(256 << 20).spawn(plinth::cli::main).map(|h| h.join().unwrap_or(101)).unwrap_or_else(|e| {
            eprintln!("error: cannot start: {e}");
            1
        });
    // Terraform provider plugins still running are stopped, not orphaned.
    plinth::tfplugin::plugin::stop_all();
    std::process::exit(code);
}
