fn main() -> std::process::ExitCode {
    hitosync::cli::main()
}
