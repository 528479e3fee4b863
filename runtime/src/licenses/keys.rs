//! License keys `XXXX-XXXX-XXXX-XXXX` (conventions: unambiguous alphabet, CSPRNG).

use rand::Rng;
use rand::TryRngCore;
use rand::rngs::OsRng;

/// Characters of generated license keys: no 0/O, 1/I/L, so keys survive being read aloud.
pub const KEY_ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";

/// A new license key `XXXX-XXXX-XXXX-XXXX` from the operating system's CSPRNG.
pub fn generate_license_key() -> String {
    let mut rng = OsRng.unwrap_err();
    let mut out = String::with_capacity(19);
    for group in 0..4 {
        if group > 0 {
            out.push('-');
        }
        for _ in 0..4 {
            let i = rng.random_range(0..KEY_ALPHABET.len());
            out.push(char::from(KEY_ALPHABET[i]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_the_documented_shape_and_alphabet() {
        for _ in 0..200 {
            let k = generate_license_key();
            assert_eq!(k.len(), 19);
            for (i, c) in k.chars().enumerate() {
                if i % 5 == 4 {
                    assert_eq!(c, '-');
                } else {
                    assert!(KEY_ALPHABET.contains(&(c as u8)), "{c} in {k}");
                }
            }
        }
        assert_ne!(generate_license_key(), generate_license_key());
    }
}
