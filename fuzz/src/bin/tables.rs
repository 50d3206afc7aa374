//! Any bytes as the text tables users hand over: the extra-conditions CSV and a CAMELS parameter table
//! (`src/data/text_tables.rs`, as `flow train --conditions` and `glow train --params` read them). Non-UTF-8
//! bytes are what `read_to_string` refuses before parsing, so they stop here too.
#[path = "../../../src/data/text_tables.rs"]
mod text_tables;

fn main() {
    afl::fuzz!(|data: &[u8]| {
        if let Ok(text) = std::str::from_utf8(data) {
            let _ = text_tables::extra_conditions(text);
            let _ = text_tables::camels_params(text);
        }
    });
}
