"""Clusters: spherical k-means, IVF search against brute force, c-TF-IDF labels, refit policy."""

from __future__ import annotations

import numpy as np
import pytest

from pixtention.curator import clusters as cl


def unit_rows(n: int, d: int, seed: int = 0, centres: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if centres:
        c = rng.normal(size=(centres, d))
        x = c[rng.integers(0, centres, n)] + 0.3 * rng.normal(size=(n, d))
    else:
        x = rng.normal(size=(n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_choose_k():
    assert cl.choose_k(0) == 1 and cl.choose_k(49) == 1
    assert cl.choose_k(100) == 10
    assert cl.choose_k(10_000) == 100
    assert cl.choose_k(10**7) == cl.MAX_CLUSTERS


def test_centroids_are_unit_and_assignment_is_nearest_centroid():
    x = unit_rows(600, 16, centres=6)
    c = cl.fit_centroids(x, 6)
    assert c.shape == (6, 16)
    np.testing.assert_allclose(np.linalg.norm(c, axis=1), 1.0, atol=1e-5)
    index = cl.build_index(x, c)
    np.testing.assert_array_equal(cl.assign(index, x), np.argmax(x @ c.T, axis=1))


def test_single_cluster_centroid_is_normalised_mean():
    x = unit_rows(10, 8)
    c = cl.fit_centroids(x, 1)
    mean = x.mean(0)
    np.testing.assert_allclose(c[0], mean / np.linalg.norm(mean), rtol=1e-5)


def test_ivf_search_with_all_probes_equals_brute_force():
    x = unit_rows(400, 24, seed=1, centres=8)
    q = unit_rows(5, 24, seed=2)
    index = cl.build_index(x, cl.fit_centroids(x, 20))
    import faiss

    scores, ids = index.search(q, 7, params=faiss.SearchParametersIVF(nprobe=20))
    brute = q @ x.T
    expect = np.argsort(-brute, axis=1)[:, :7]
    np.testing.assert_array_equal(ids, expect)
    np.testing.assert_allclose(scores, np.take_along_axis(brute, expect, 1), rtol=1e-5)


def test_one_probe_searches_only_the_nearest_cluster():
    import faiss

    x = unit_rows(400, 24, seed=3, centres=8)
    c = cl.fit_centroids(x, 20)
    index = cl.build_index(x, c)
    q = unit_rows(4, 24, seed=4)
    _, ids = index.search(q, 50, params=faiss.SearchParametersIVF(nprobe=1))
    best = np.argmax(q @ c.T, axis=1)
    members = cl.assign(index, x)
    for row, cluster in zip(ids, best):
        found = row[row >= 0]
        assert len(found) and set(members[found]) == {cluster}
        assert len(found) == min(50, int((members == cluster).sum()))


def test_vectors_and_centroids_survive_a_file_round_trip(tmp_path):
    x = unit_rows(120, 12)
    c = cl.fit_centroids(x, 5)
    digest = cl.write_index(cl.build_index(x, c), tmp_path / "v.faiss")
    cl.verify_file(tmp_path / "v.faiss", digest)
    back = cl.read_index(tmp_path / "v.faiss", 120, 12)
    np.testing.assert_array_equal(cl.vectors_of(back), x)
    np.testing.assert_array_equal(cl.centroids_of(back), c)
    with pytest.raises(ValueError, match="expects"):
        cl.read_index(tmp_path / "v.faiss", 121, 12)


def test_damaged_index_file_is_detected(tmp_path):
    x = unit_rows(50, 8)
    path = tmp_path / "v.faiss"
    digest = cl.write_index(cl.build_index(x, cl.fit_centroids(x, 1)), path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="checksum"):
        cl.verify_file(path, digest)
    path.write_bytes(b"not a faiss file at all")
    with pytest.raises(ValueError, match="cannot read"):
        cl.read_index(path, 50, 8)


def test_labels_name_each_theme_by_its_distinctive_terms():
    themes = {
        "watercolor painting soft paper": 0,
        "cyberpunk neon city night": 1,
        "knight armor plate medieval": 2,
    }
    texts, assignment = [], []
    for words, c in themes.items():
        for i in range(10):
            texts.append(f"{words} lora style model v{i} illustration")
            assignment.append(c)
    labels = cl.label_clusters(texts, np.array(assignment), 3)
    for label, words in zip(labels, themes):  # shared words and stopwords never win
        assert set(label.split(" · ")) <= set(words.split()), label
    assert labels[0].startswith("watercolor")  # ties: the term met first (titles lead)


def test_refit_policy():
    assert cl.needs_refit(100, 0, 0, 0)  # never fitted
    assert not cl.needs_refit(105, 100, 5, 10)  # small change: new vectors join clusters
    assert cl.needs_refit(130, 100, 30, 10)  # more than REFIT_FRACTION changed
    assert cl.needs_refit(60, 40, 20, 1)  # crossed the one-cluster threshold


def test_one_cluster_gets_a_plain_label():
    assert cl.label_clusters(["cat picture", "dog picture"], np.array([0, 0]), 1) == [
        cl.ONE_CLUSTER_LABEL
    ]
