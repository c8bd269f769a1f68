//! The sensor_pipeline example (client/examples/sensor_pipeline.rs), run
//! and its summary checked: counts add up, nothing sent is lost, order.

#[allow(dead_code)]
#[path = "../examples/sensor_pipeline.rs"]
mod example;

use std::collections::HashMap;
use std::time::Duration;

/// Runs the example and returns its summary's numbers by name.
fn run(samples: u64, consumer_delay: Duration) -> (String, HashMap<String, u64>) {
    let mut out = Vec::new();
    example::run(samples, consumer_delay, &mut out).expect("the example failed");
    let text = String::from_utf8(out).unwrap();
    // "sent 5 dropped 0" -> sent=5, dropped=0 (a word followed by a number).
    let mut nums = HashMap::new();
    let words: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || c == ',' || c == '(' || c == ')')
        .filter(|w| !w.is_empty())
        .collect();
    for w in words.windows(2) {
        if let Ok(n) = w[1].parse::<u64>() {
            nums.insert(w[0].to_string(), n);
        }
    }
    (text, nums)
}

#[test]
fn example_sensor_pipeline_delivers_every_sent_sample_once_in_order() {
    let (text, n) = run(20_000, Duration::ZERO);
    assert_eq!(n["produced"], 20_000, "{text}");
    assert_eq!(n["sent"] + n["dropped"], 20_000, "{text}");
    assert_eq!(
        n["received"], n["sent"],
        "every sent sample arrives: {text}"
    );
    assert_eq!(n["undelivered"], 0, "{text}");
    assert!(text.contains("in order: yes"), "{text}");
    assert!(n["largest"] <= 64, "batches are at most 64: {text}");
}

#[test]
fn example_sensor_pipeline_with_a_slow_consumer_drops_at_the_producer_only() {
    // 20 ms per batch of at most 64 against a producer that waits 200 µs
    // per sample: the ring is full most of the time.
    let (text, n) = run(3_000, Duration::from_millis(20));
    assert!(
        n["dropped"] > 0,
        "a slow consumer makes the producer drop: {text}"
    );
    assert_eq!(n["sent"] + n["dropped"], 3_000, "{text}");
    assert_eq!(
        n["received"], n["sent"],
        "what was sent is never lost: {text}"
    );
    assert_eq!(n["undelivered"], 0, "{text}");
    assert!(n["gaps"] > 0, "the drops show as index gaps: {text}");
    assert!(text.contains("in order: yes"), "{text}");
}
