//! Stamps the build date served by the health routes.
fn main() {
    println!("cargo:rerun-if-changed=src");
    let date = chrono::Utc::now().format("%Y-%m-%d").to_string();
    println!("cargo:rustc-env=KALAMDB_BUILD_DATE={date}");
}
