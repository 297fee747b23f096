//! Shared by the targets (included with `#[path]`, not a module of a library).

/// libfuzzer-sys installs a panic hook that aborts on *any* panic, including those
/// `floe_kafka`'s guard catches by design and turns into an `Err`. Unless
/// `FLOE_FUZZ_STRICT_PANICS` is set, replace it with a silent hook: a caught panic is then
/// an ordinary `Err`, while a panic that escapes the decoder still aborts (libfuzzer-sys
/// aborts when the target unwinds) and an allocation failure still aborts as before.
pub fn allow_caught_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("FLOE_FUZZ_STRICT_PANICS").is_none() {
            std::panic::set_hook(Box::new(|_| {}));
        }
    });
}
