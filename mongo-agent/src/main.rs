fn main() {
    eprintln!("fedstate-mongo-agent: not built yet");
    std::process::exit(2);
}
