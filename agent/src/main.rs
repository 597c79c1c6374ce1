fn main() -> std::process::ExitCode {
    kubeboot::cli::main()
}
