//! The standalone matching service (one module per process, configured from the environment).

fn main() -> std::process::ExitCode {
    tt_common::platform::standalone::main(&tt_matching::MODULE, timetravelers::MODULES)
}
