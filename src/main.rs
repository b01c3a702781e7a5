fn main() {
    std::process::exit(ferry::cli::main());
}
