fn main() {
    eprintln!("fedstate-local: not built yet");
    std::process::exit(2);
}
