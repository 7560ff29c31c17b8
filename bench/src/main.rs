//! The `catalogue-bench` binary: the same workloads as `catalogue bench`
//! (see the library, `lib.rs`), run from their own crate. The nodes it
//! starts run the `catalogue` binary beside it, or `--catalogue PATH`.

use std::process::ExitCode;

use catalogue_bench::BenchArgs;
use clap::Parser;

/// `catalogue-bench` flags: those of `catalogue bench`.
#[derive(Debug, Parser)]
#[command(
    version,
    about = "Measure catalogue nodes on loopback (or etcd) and print tables"
)]
struct Cli {
    #[command(flatten)]
    args: BenchArgs,
}

fn main() -> ExitCode {
    match catalogue_bench::run(&Cli::parse().args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
