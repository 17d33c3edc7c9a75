//! A database of a given size for the benches: `benches/backup.rs` and `make bench`'s
//! replication rows fill theirs the same way.

use std::path::Path;

use aimake::db::Db;

/// Rows of varied text until the file reaches `mb` megabytes.
pub async fn fill(db: &Db, path: &Path, mb: usize) -> anyhow::Result<()> {
    db.write(|c| {
        c.execute_batch(
            "CREATE TABLE bench_rows (id INTEGER PRIMARY KEY, body TEXT NOT NULL);
             CREATE TABLE bench_writes (id INTEGER PRIMARY KEY, at INTEGER NOT NULL);",
        )?;
        Ok(())
    })
    .await?;
    let mut start = 0;
    while std::fs::metadata(path)?.len() < mb as u64 * 1_000_000 {
        db.write(move |c| {
            let tx = c.transaction()?;
            {
                let mut stmt = tx.prepare("INSERT INTO bench_rows (body) VALUES (?1)")?;
                for i in start..start + 20_000 {
                    let body: String = (0..24)
                        .map(|k| format!("{:08x}-{k} ", (i as u64).wrapping_mul(2654435761) ^ k))
                        .collect();
                    stmt.execute([body])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await?;
        start += 20_000;
    }
    Ok(())
}
