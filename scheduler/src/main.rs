fn main() {
    eprintln!("fedstate-scheduler: not built yet");
    std::process::exit(2);
}
