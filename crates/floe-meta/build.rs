//! Rebuild when the embedded migrations change (`sqlx::migrate!` embeds them at compile time).
fn main() {
    println!("cargo:rerun-if-changed=../../sql/migrations");
    println!("cargo:rerun-if-changed=../../sql/migrations/sqlite");
    println!("cargo:rerun-if-changed=../../sql/migrations/postgres");
}
