fn main() {
    println!("remoteagent-cloud: not yet wired");
}
