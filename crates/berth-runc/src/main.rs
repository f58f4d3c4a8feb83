//! berth-runc: the runc command line over berth-runtime, for dockerd, containerd and people.

mod cli;
mod features;
mod log;
mod spec;

fn main() {
    berth_runtime::lean::lean_text();
    std::process::exit(cli::main());
}
