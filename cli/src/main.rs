fn main() -> std::process::ExitCode {
    kubeboot::main()
}
