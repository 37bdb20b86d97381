//! `ccl demo`.
use anyhow::Result;

pub fn run(_keep: bool) -> Result<bool> {
    println!("ccl demo is not available yet in this build");
    Ok(false)
}
