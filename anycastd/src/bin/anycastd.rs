fn main() {
    eprintln!("anycastd: not yet implemented");
    std::process::exit(2);
}
