//! Layer write and read benchmark (filled below).
fn main() {}
