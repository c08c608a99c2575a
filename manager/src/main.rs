fn main() {
    eprintln!("fedstate-manager: not built yet");
    std::process::exit(2);
}
