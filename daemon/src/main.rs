fn main() {
    std::process::exit(gatewayd::cli::main());
}
