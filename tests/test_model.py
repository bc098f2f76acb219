"""Graph expansion, propagation, assignments, fine stage and memory against dense references."""

import numpy as np
import pytest
import torch

from cfme import assignment
from cfme.data.synthetic import generate_synthetic
from cfme.embeddings import (
    CoarseMetaEmbedding,
    CoarseToFineMetaEmbedding,
    FullEmbedding,
    soft_threshold,
    sparse_pca_init,
)
from cfme.graph import TrainingGraph, virtual_node_graph
from cfme.memory import index_dtype, memory_report
from cfme.propagation import bridged_lightgcn, lightgcn


def toy_graph(num_users=12, num_items=15, seed=0):
    split = generate_synthetic(num_users, num_items, num_clusters=3, mean_degree=5, seed=seed)
    return TrainingGraph.from_interactions(split.train_users, split.train_items, num_users,
                                           num_items)


def dense_norm(a: torch.Tensor) -> torch.Tensor:
    d = a.sum(1)
    inv = torch.where(d > 0, d.clamp(min=1e-30).pow(-0.5), torch.zeros_like(d))
    return inv[:, None] * a * inv[None, :]


def dense_adjacency(g: TrainingGraph) -> torch.Tensor:
    a = torch.zeros(g.num_nodes, g.num_nodes, dtype=torch.float64)
    a[g.edge_index[0], g.edge_index[1]] = 1.0
    return a


def dense_assignment(index, value, cols):
    m = torch.zeros(index.shape[0], cols, dtype=torch.float64)
    m.scatter_(1, index, value.double())
    return m


def test_normalized_adjacency_matches_dense():
    g = toy_graph()
    assert torch.allclose(g.adjacency().to_dense().double(), dense_norm(dense_adjacency(g)),
                          atol=1e-6)


def test_expanded_graphs_symmetric_and_normalized_as_dense():
    g = toy_graph()
    n, c, m = g.num_nodes, 5, 3
    torch.manual_seed(0)
    s_index = torch.stack([torch.randperm(c)[:2] for _ in range(n)])
    s_value = torch.rand(n, 2)
    t_index = torch.stack([torch.randperm(m)[:2] for _ in range(c)])
    t_value = torch.rand(c, 2)
    a_hat = dense_norm(dense_adjacency(g))
    s = dense_assignment(s_index, s_value, c)
    t = dense_assignment(t_index, t_value, m)

    g1 = virtual_node_graph(g, [(s_index, s_value, 0, n)], n + c).to_dense().double()
    ref1 = torch.zeros(n + c, n + c, dtype=torch.float64)
    ref1[:n, :n], ref1[:n, n:], ref1[n:, :n] = a_hat, s, s.T
    assert torch.allclose(g1, g1.T, atol=1e-6)
    assert torch.allclose(g1, dense_norm(ref1), atol=1e-6)

    g2 = virtual_node_graph(g, [(s_index, s_value, 0, n), (t_index, t_value, n, n + c)],
                            n + c + m).to_dense().double()
    ref2 = torch.zeros(n + c + m, n + c + m, dtype=torch.float64)
    ref2[:n, :n], ref2[:n, n:n + c], ref2[n:n + c, :n] = a_hat, s, s.T
    ref2[n:n + c, n + c:], ref2[n + c:, n:n + c] = t, t.T
    assert torch.allclose(g2, dense_norm(ref2), atol=1e-6)


def test_symmetric_propagation_matches_autograd_reference():
    g = toy_graph()
    adj = g.adjacency()
    dense = adj.to_dense()
    x = torch.randn(g.num_nodes, 4, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    out = lightgcn(adj, x, 3)
    ref = (x_ref + dense @ x_ref + dense @ (dense @ x_ref) + dense @ (dense @ (dense @ x_ref))) / 4
    assert torch.allclose(out, ref, atol=1e-5)
    w = torch.randn_like(out)
    (out * w).sum().backward()
    (ref * w).sum().backward()
    assert torch.allclose(x.grad, x_ref.grad, atol=1e-5)


def test_bridged_propagation_matches_dense_step_by_step():
    torch.manual_seed(1)
    n, c, m, d, g_w = 7, 4, 3, 5, 0.2
    s_index = torch.stack([torch.randperm(c)[:2] for _ in range(n)])
    s_value = torch.rand(n, 2)
    t_index = torch.stack([torch.randperm(m)[:2] for _ in range(c)])
    t_value = torch.rand(c, 2)
    s = dense_assignment(s_index, s_value, c).float()
    t = dense_assignment(t_index, t_value, m).float()
    big = torch.rand(n + c + m, n + c + m)
    big = dense_norm((big + big.T).double()).float()
    h0 = torch.randn(n + c + m, d, requires_grad=True)
    out = bridged_lightgcn(big.to_sparse_csr(), h0, 2, (n, c, m),
                           (s.to_sparse_csr(), s.T.to_sparse_csr()),
                           (t.to_sparse_csr(), t.T.to_sparse_csr()), g_w)
    h0_ref = h0.detach().clone().requires_grad_(True)
    layers, h = [h0_ref], h0_ref
    for _ in range(2):
        z = big @ h
        zn, zc, zf = z[:n], z[n:n + c], z[n + c:]
        zn = zn - s @ zc
        zc = zc - t @ zf
        zc = g_w * (t @ zf) + (1 - g_w) * zc
        zn = zn + s @ zc
        h = torch.cat([zn, zc, zf])
        layers.append(h)
    ref = torch.stack(layers).mean(0)
    assert torch.allclose(out, ref, atol=1e-5)
    w = torch.randn_like(ref)
    (out * w).sum().backward()
    (ref * w).sum().backward()
    assert torch.allclose(h0.grad, h0_ref.grad, atol=1e-5)  # gradients of the fused backward


def test_coarse_init_and_update_keep_t_nonzeros():
    g = toy_graph()
    net = CoarseMetaEmbedding(g, dim=8, num_layers=2, num_coarse=6, t=2, anchor_weight=0.5)
    assert net.s_index.shape == (g.num_nodes, 2)
    assert all(len(set(row.tolist())) == 2 for row in net.s_index)
    assert torch.allclose(net.s_value.sum(1), torch.ones(g.num_nodes))
    assert torch.all(net.s_value[:, 0] == 0.5)
    h, _ = net()
    net.update_assignment(h.detach())
    assert net.s_index.shape == (g.num_nodes, 2)
    assert all(len(set(row.tolist())) == 2 for row in net.s_index)
    ref = (h[:g.num_nodes] @ torch.linalg.pinv(h[g.num_nodes:])).detach()
    top = ref.topk(2, dim=1)
    assert torch.allclose(net.s_value, top.values, atol=1e-4)
    h2, _ = net()  # graph rebuilt with the new S
    assert torch.isfinite(h2).all()


def test_coarse_init_deterministic_under_seed():
    g = toy_graph()
    a = CoarseMetaEmbedding(g, dim=4, num_coarse=5, t=3, seed=3)
    b = CoarseMetaEmbedding(g, dim=4, num_coarse=5, t=3, seed=3)
    assert torch.equal(a.s_index, b.s_index)


def test_metis_options_override_pymetis_defaults_and_reach_the_nets():
    from omegaconf import OmegaConf

    g = toy_graph(300, 400)
    own = assignment.partition(g, 10, seed=5)
    assert not np.array_equal(own, assignment.partition(g, 10, seed=2))  # the seed matters here
    # an option's seed replaces the run's; the net's S is anchored on the parts it gets
    assert np.array_equal(assignment.partition(g, 10, seed=2, metis_options={"seed": 5}), own)
    net = CoarseMetaEmbedding(g, dim=4, num_coarse=10, t=2, seed=2,
                              metis_options=OmegaConf.create({"seed": 5}))  # as Hydra passes it
    assert np.array_equal(net.s_index[:, 0].numpy(), own)
    # niter reaches METIS: one refinement pass gives other parts on this graph
    assert not np.array_equal(assignment.partition(g, 10, seed=2),
                              assignment.partition(g, 10, seed=2, metis_options={"niter": 1}))
    coarse = {"codebook": net.codebook.detach(), "s_index": net.s_index, "s_value": net.s_value}
    fine = CoarseToFineMetaEmbedding(g, coarse, dim=4, num_fine=6, k=2, k_pca=4, seed=2,
                                     metis_options={"seed": 5})
    def t_of(metis_seed):
        parts = assignment.partition(g, 6, seed=metis_seed)
        return assignment.fine_init(net.s_index, net.s_value, parts, 10, 6, 2)

    ref, run_seed = t_of(5), t_of(2)
    assert torch.equal(fine.t_index, ref[0]) and torch.equal(fine.t_value, ref[1])
    assert not (torch.equal(ref[0], run_seed[0]) and torch.equal(ref[1], run_seed[1]))
    with pytest.raises(ValueError, match="model.fine.net.metis_options.bogus: not one of"):
        CoarseToFineMetaEmbedding(g, coarse, dim=4, num_fine=6, k=2, k_pca=4,
                                  metis_options={"bogus": 1})
    with pytest.raises(ValueError, match="model.coarse.net.metis_options.niter='x' must be an int"):
        CoarseMetaEmbedding(g, dim=4, num_coarse=10, metis_options={"niter": "x"})
    with pytest.raises(ValueError, match="model.coarse.net.metis_options.niter=True must be an int"):
        CoarseMetaEmbedding(g, dim=4, num_coarse=10, metis_options={"niter": True})
    with pytest.raises(ValueError, match="model.coarse.net.metis_options must be a mapping"):
        CoarseMetaEmbedding(g, dim=4, num_coarse=10, metis_options=[1])
    with pytest.raises(ValueError, match="partition=random runs no METIS"):
        CoarseMetaEmbedding(g, dim=4, num_coarse=10, partition="random",
                            metis_options={"niter": 1})


def test_partition_file_replaces_metis_in_the_files_order(tmp_path):
    from cfme.data import InteractionDataModule

    dm = InteractionDataModule(name="synthetic", reorder="metis",
                               synthetic=dict(num_users=300, num_items=400, seed=1))
    dm.setup()
    g = dm.graph
    file_ids = np.concatenate([dm.user_ids, dm.item_ids + 300])
    assert np.array_equal(g.file_ids, file_ids) and not np.array_equal(file_ids, np.arange(700))
    # parts given per file id (users, then items); each internal node gets its file id's part
    by_file = (np.arange(700) * 7) % 10
    np.save(tmp_path / "parts.npy", by_file)
    np.savetxt(tmp_path / "parts.txt", by_file, fmt="%d")
    net = CoarseMetaEmbedding(g, dim=4, num_coarse=10, t=2, partition_file=str(tmp_path / "parts.npy"))
    assert np.array_equal(net.s_index[:, 0].numpy(), by_file[file_ids])
    assert np.array_equal(assignment.partition(g, 10, 0, file=str(tmp_path / "parts.txt")),
                          by_file[file_ids])
    coarse = {"codebook": net.codebook.detach(), "s_index": net.s_index, "s_value": net.s_value}
    fine = CoarseToFineMetaEmbedding(g, coarse, dim=4, num_fine=10, k=2, k_pca=4,
                                     partition_file=str(tmp_path / "parts.txt"))
    ref = assignment.fine_init(net.s_index, net.s_value, by_file[file_ids], 10, 10, 2)
    assert torch.equal(fine.t_index, ref[0]) and torch.equal(fine.t_value, ref[1])
    # a graph in the files' own order reads the file as it is
    plain = toy_graph(300, 400)
    assert np.array_equal(assignment.partition(plain, 10, 0, file=str(tmp_path / "parts.npy")),
                          by_file)

    def refused(match, **kw):
        with pytest.raises((ValueError, FileNotFoundError), match=match):
            CoarseMetaEmbedding(g, dim=4, num_coarse=10, **kw)

    refused("model.coarse.net.partition_file=.*missing.npy: no such file",
            partition_file=str(tmp_path / "missing.npy"))
    np.save(tmp_path / "short.npy", by_file[:-1])
    refused("holds 699 ids .* expected 700: one per user \\(300\\), then one per item \\(400\\)",
            partition_file=str(tmp_path / "short.npy"))
    np.save(tmp_path / "big.npy", by_file + 1)
    refused("entry 7 \\(0-based\\) is part 10, not in \\[0, 10\\)",
            partition_file=str(tmp_path / "big.npy"))
    np.save(tmp_path / "frac.npy", by_file + 0.5)
    refused("part ids must be integers", partition_file=str(tmp_path / "frac.npy"))
    (tmp_path / "words.txt").write_text("a\nb\n")
    refused("not a .npy array nor text", partition_file=str(tmp_path / "words.txt"))
    (tmp_path / "words.npy").write_text("not numpy")
    refused("words.npy: not a .npy array nor text", partition_file=str(tmp_path / "words.npy"))
    refused("partition_file is set, so no partition is drawn; drop model.coarse.net.partition",
            partition="random", partition_file=str(tmp_path / "parts.npy"))
    refused("partition_file is set, so METIS does not run; drop model.coarse.net.metis_options",
            metis_options={"niter": 1}, partition_file=str(tmp_path / "parts.npy"))
    with pytest.raises(ValueError, match="model.fine.net.partition_file=.*big.npy: entry 7"):
        CoarseToFineMetaEmbedding(g, coarse, dim=4, num_fine=10, k=2, k_pca=4,
                                  partition_file=str(tmp_path / "big.npy"))


def test_bias_init_std_draws_entity_biases_only_and_leaves_the_codebook():
    g = toy_graph(300, 400)  # N = 700
    torch.manual_seed(0)
    zero = CoarseMetaEmbedding(g, dim=4, num_coarse=5, bias=True)
    torch.manual_seed(0)
    drawn = CoarseMetaEmbedding(g, dim=4, num_coarse=5, bias=True, bias_init_std=1.0)
    assert torch.equal(zero.bias, torch.zeros(g.num_nodes + 1))
    assert torch.equal(zero.codebook, drawn.codebook)  # C's draw does not move
    assert drawn.bias[-1] == 0  # the global term starts at 0, as torchfm's
    assert 0.9 < drawn.bias[:-1].std() < 1.1 and abs(drawn.bias[:-1].mean()) < 0.1
    torch.manual_seed(0)
    full = FullEmbedding(g, dim=4, bias=True, bias_init_std=0.5)
    assert 0.45 < full.bias[:-1].std() < 0.55 and full.bias[-1] == 0
    torch.manual_seed(0)
    plain = FullEmbedding(g, dim=4, bias=True)
    assert torch.equal(plain.weight, full.weight)  # the table's draw does not move either
    with pytest.raises(ValueError, match="model.bias_init_std=-1"):
        CoarseMetaEmbedding(g, dim=4, num_coarse=5, bias=True, bias_init_std=-1.0)


def test_bias_init_std_without_bias_warns(caplog):
    FullEmbedding(toy_graph(), dim=4, bias=False, bias_init_std=1.0)
    assert "model.bias is off" in caplog.text


def test_soft_threshold():
    x = torch.tensor([-2.5, -1.0, -0.3, 0.0, 0.7, 1.0, 1.5])
    assert torch.allclose(soft_threshold(x, 1.0), torch.tensor([-1.5, 0, 0, 0, 0, 0, 0.5]))


def test_sparse_pca_init_rows_have_at_most_k_pca_nonzeros():
    codebook = torch.randn(30, 16)
    f = sparse_pca_init(codebook, num_fine=10, k_pca=5, seed=0)
    assert f.shape == (10, 16)
    assert ((f != 0).sum(1) <= 5).all()
    assert (f != 0).any()


def _fine_net(seed=0, **kw):
    g = toy_graph()
    coarse = CoarseMetaEmbedding(g, dim=8, num_layers=2, num_coarse=6, t=2, seed=seed)
    state = {"codebook": coarse.codebook.detach(), "s_index": coarse.s_index,
             "s_value": coarse.s_value}
    args = dict(dim=8, num_layers=2, num_fine=4, k=2, soft_threshold=0.1, k_pca=4, seed=seed)
    args.update(kw)
    return CoarseToFineMetaEmbedding(g, state, **args)


def test_fine_stage_keeps_coarse_frozen_and_t_has_k_nonzeros():
    net = _fine_net()
    c0, si0, sv0 = net.codebook.clone(), net.s_index.clone(), net.s_value.clone()
    assert net.t_index.shape == (6, 2)
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=0.1)
    f0 = net.fine.detach().clone()
    for _ in range(3):
        h, e = net()
        loss = h.pow(2).sum() + e.sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        net.update_assignment(h.detach())
        assert net.t_index.shape == (6, 2)
        assert all(len(set(r.tolist())) == 2 for r in net.t_index)
    assert torch.equal(net.codebook, c0) and torch.equal(net.s_index, si0)
    assert torch.equal(net.s_value, sv0)
    assert not torch.equal(net.fine.detach(), f0)
    assert not net.codebook.requires_grad


def test_fine_init_t_is_top_k_softmax_of_st_p():
    g = toy_graph()
    n, c, m, k = g.num_nodes, 6, 4, 2
    s_index, s_value = assignment.coarse_init(np.arange(n) % c, c, 2, 0.5, seed=0)
    parts = np.arange(n) % m
    p = torch.full((n, m), 0.5 / (m - 1), dtype=torch.float64)
    p[torch.arange(n), torch.as_tensor(parts)] = 0.5
    soft = torch.softmax(dense_assignment(s_index, s_value, c).T @ p, dim=1)
    index, value = assignment.fine_init(s_index, s_value, parts, c, m, k)
    assert torch.allclose(value, soft.topk(k, dim=1).values.float(), atol=1e-6)
    assert torch.allclose(soft.gather(1, index).float(), value, atol=1e-6)  # ties-robust


@pytest.mark.parametrize("bad, match", [
    (dict(k=9), "k=9"), (dict(k_pca=99), "k_pca"), (dict(bridge=1.5), "bridge"),
    (dict(soft_threshold=-1.0), "soft_threshold"),
])
def test_fine_refuses_contradictory_settings(bad, match):
    with pytest.raises(ValueError, match=match):
        _fine_net(**bad)


def test_coarse_refuses_t_above_c():
    with pytest.raises(ValueError, match="t=7"):
        CoarseMetaEmbedding(toy_graph(), dim=4, num_coarse=6, t=7)


def test_memory_accounting_equals_hand_count():
    g = toy_graph()  # N = 27
    n, d = g.num_nodes, 8
    full = memory_report(FullEmbedding(g, dim=d, bias=True))
    assert full["memory/total_bytes"] == n * d * 4 + (n + 1) * 4
    coarse = CoarseMetaEmbedding(g, dim=d, num_coarse=6, t=2)
    rep = memory_report(coarse)
    assert rep["memory/total_bytes"] == 6 * d * 4 + n * 2 * 4 + n * 2 * 1
    assert rep["memory/S_indices_dtype"] == "uint8"
    fine = _fine_net(soft_threshold=0.0)
    nnz = int((fine.sparse_fine() != 0).sum())
    rep = memory_report(fine)
    assert rep["memory/fine_values_params"] == nnz
    assert rep["memory/total_bytes"] == (6 * d * 4 + n * 2 * (4 + 1) + nnz * (4 + 1)
                                         + 6 * 2 * (4 + 1))
    assert rep["memory/ratio_to_full"] == rep["memory/total_bytes"] / (n * d * 4)
    assert index_dtype(256) == "uint8" and index_dtype(257) == "uint16"
    assert index_dtype(300) == "uint16" and index_dtype(12_800) == "uint16"
