//! Mutators: small random edits of a valid input (bit flips, byte
//! changes, insertions, deletions, truncation, duplication, a rewritten
//! length prefix), the way a fuzzer breaks a frame that used to be right.

use super::Rng;

/// `len` random bytes.
pub fn random_bytes(rng: &mut Rng, len: usize) -> Vec<u8> {
    (0..len).map(|_| rng.byte()).collect()
}

/// Length prefixes worth trying: zero, tiny, around common limits, huge.
const PREFIXES: [u32; 8] = [
    0,
    1,
    0x7F,
    64 * 1024,
    4 * 1024 * 1024,
    4 * 1024 * 1024 + 1,
    0x7FFF_FFFF,
    0xFFFF_FFFF,
];

/// A copy of `input` with one to four random edits.
pub fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        edit(rng, &mut out);
    }
    out
}

fn edit(rng: &mut Rng, out: &mut Vec<u8>) {
    let len = out.len();
    match rng.below(8) {
        0 if len > 0 => {
            let i = rng.below(len);
            out[i] ^= 1 << rng.below(8);
        }
        1 if len > 0 => {
            let i = rng.below(len);
            let any = rng.byte();
            out[i] = *rng.pick(&[0x00, 0x01, 0x7F, 0x80, 0xFF, any]);
        }
        2 => {
            let at = rng.below(len + 1);
            let n = 1 + rng.below(16);
            let extra = random_bytes(rng, n);
            out.splice(at..at, extra);
        }
        3 if len > 0 => {
            let at = rng.below(len);
            let end = (at + 1 + rng.below(16)).min(len);
            out.drain(at..end);
        }
        4 if len > 0 => out.truncate(rng.below(len)),
        5 if len > 0 => {
            let at = rng.below(len);
            let end = (at + 1 + rng.below(32)).min(len);
            let chunk = out[at..end].to_vec();
            out.splice(at..at, chunk);
        }
        6 if len >= 4 => {
            let prefix = rng.pick(&PREFIXES).to_be_bytes();
            out[..4].copy_from_slice(&prefix);
        }
        _ => {
            // Set a varint-ish run of 0xFF bytes (overlong lengths, tags).
            let at = rng.below(len + 1);
            let run = vec![0xFF; 1 + rng.below(10)];
            out.splice(at..at, run);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutations_change_the_input_and_repeat_with_the_seed() {
        let input = b"\x00\x00\x00\x06\x08\x05\x22\x02\x08\x01";
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        let mut changed = 0;
        for _ in 0..200 {
            let x = mutate(&mut a, input);
            assert_eq!(x, mutate(&mut b, input));
            changed += usize::from(x != input);
        }
        assert!(changed > 150, "{changed} of 200 changed");
    }
}
