//! Direct milvus-sdk-rust search latency: the baseline of
//! `benches/vector_search.py` (sluice's `vector_search` over Flight SQL
//! against the same collection, vector, k and consistency level).
//!
//! ```text
//! cargo run --release -p sluice-connectors --example milvus_search -- \
//!     <uri> <collection> <field> <k> <iterations> <v1,v2,…> [output,fields] [consistency]
//! ```
//!
//! Prints one JSON line: `{"p50_us":…, "p90_us":…, "hits":…}`.

use std::time::Instant;

use milvus::v2::prelude::{
    ClientV2, ConnectConfig, ConsistencyLevel, SearchRequest, SearchVectors,
};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [uri, collection, field, k, iterations, vector, rest @ ..] = args.as_slice() else {
        return Err(
            "usage: milvus_search <uri> <collection> <field> <k> <iterations> <v1,v2,…> [fields]"
                .into(),
        );
    };
    let k: i64 = k.parse()?;
    let iterations: usize = iterations.parse()?;
    let vector: Vec<f32> = vector
        .split(',')
        .map(|x| x.trim().parse())
        .collect::<Result<_, _>>()?;
    let fields: Vec<String> = rest
        .first()
        .map(|f| f.split(',').map(str::to_string).collect())
        .unwrap_or_default();
    let consistency = match rest.get(1).map(String::as_str) {
        None | Some("") => None,
        Some("strong") => Some(ConsistencyLevel::Strong),
        Some("session") => Some(ConsistencyLevel::Session),
        Some("bounded") => Some(ConsistencyLevel::Bounded),
        Some("eventually") => Some(ConsistencyLevel::Eventually),
        Some(other) => return Err(format!("unknown consistency {other}").into()),
    };
    let client = ClientV2::new(&ConnectConfig::new().uri(uri.clone())).await?;
    let mut times = Vec::with_capacity(iterations);
    let mut hits = 0;
    for i in 0..iterations + 3 {
        let mut request = SearchRequest::builder()
            .collection_name(collection.clone())
            .vector_field(field.clone())
            .vectors(SearchVectors::Float(vec![vector.clone()]))
            .limit(k)
            .output_fields(fields.clone());
        if let Some(level) = consistency {
            request = request.consistency_level(level);
        }
        let request = request.build()?;
        let started = Instant::now();
        let response = client.search(request).await?;
        let elapsed = started.elapsed();
        hits = response
            .results()
            .get_results()
            .first()
            .map_or(0, |r| r.get_scores().len());
        // The first calls warm the connection and caches.
        if i >= 3 {
            times.push(elapsed.as_micros() as u64);
        }
    }
    times.sort_unstable();
    let pct = |p: f64| times[((times.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "{{\"p50_us\":{},\"p90_us\":{},\"hits\":{hits}}}",
        pct(0.5),
        pct(0.9)
    );
    Ok(())
}
