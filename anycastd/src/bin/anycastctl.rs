fn main() {
    eprintln!("anycastctl: not yet implemented");
    std::process::exit(2);
}
