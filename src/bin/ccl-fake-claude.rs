//! `ccl-fake-claude`: the stand-in Claude Code of the `ccl-fake-claude` crate, installed
//! beside `ccl` because `ccl demo` runs it.
fn main() {
    ccl_fake_claude::main()
}
