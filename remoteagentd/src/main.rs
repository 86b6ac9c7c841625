fn main() {
    println!("remoteagentd: not yet wired");
}
