"""`emtune bench hash` measures what it says: the bytes it wrote, hashed and read back."""

from __future__ import annotations

from emtune.store.hash_bench import run_bench


def test_the_hash_bench_times_the_bytes_it_wrote(tmp_path):
    row = run_bench(size_mb=2, files=2, folder=tmp_path)

    assert row.files == 2 and 2.0 <= row.megabytes <= 2.2
    assert row.read_mbps > 0 and row.sha256_mbps > 0 and row.write_mbps > 0
    assert list(tmp_path.iterdir()) == []  # its files are gone
