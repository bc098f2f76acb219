"""Hydra composition of conf/: every group option composes, resolves and instantiates."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"

GROUPS = sorted(p.name for p in CONF_DIR.iterdir() if p.is_dir())
# tiny synthetic data so that anything built from the config stays cheap
SMALL = ["data.synthetic.num_users=120", "data.synthetic.num_items=160", "budget=tiny"]


@pytest.fixture(autouse=True)
def _clean_hydra_state():
    """Leave no global Hydra state behind for other test modules."""
    yield
    GlobalHydra.instance().clear()
    HydraConfig.instance().cfg = None


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def group_params():
    params = []
    for group in GROUPS:
        opts = options(group)
        if not opts:
            params.append(pytest.param(group, None, id=f"{group}-none",
                                       marks=pytest.mark.skip(reason=f"conf/{group} is empty")))
        params += [pytest.param(group, opt, id=f"{group}={opt}") for opt in opts]
    return params


def load(overrides: list[str], output_dir: Path) -> DictConfig:
    """Compose ``config`` and make ``${hydra:...}`` resolvable as in a real run."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(output_dir)
    HydraConfig.instance().set_config(cfg)
    return cfg


def compose_option(group: str, option: str, output_dir: Path, extra=()) -> DictConfig:
    errors = []
    for override in (f"{group}={option}", f"+{group}={option}"):
        try:
            return load([override, *extra], output_dir)
        except Exception as err:  # try the other override syntax, then report both
            errors.append(f"{override}: {err}")
    pytest.fail("could not compose: " + " | ".join(errors))


def resolved(cfg: DictConfig) -> dict:
    """Every top-level node except ``hydra``, fully resolved (raises on missing values)."""
    return {k: OmegaConf.to_container(cfg[k], resolve=True, throw_on_missing=True)
            if isinstance(cfg[k], DictConfig) else cfg[k]
            for k in cfg if k != "hydra"}


def assert_signature_accepts(node: dict, *extra: str) -> type:
    """The ``_target_`` imports and its constructor takes every key of ``node``."""
    cls = get_class(node["_target_"])
    kwargs = {k: v for k, v in node.items() if not k.startswith("_")}
    kwargs.update(dict.fromkeys(extra))
    inspect.signature(cls).bind_partial(**kwargs)
    return cls


def test_groups_discovered(conf_dir):
    assert CONF_DIR == conf_dir and (conf_dir / "config.yaml").is_file()
    assert {"data", "model", "trainer", "logger", "backbone", "budget", "sparsity"} <= set(GROUPS)
    assert "synthetic" in options("data") and "gowalla" in options("data")
    assert {"legcf", "cfme", "full"} <= set(options("model"))


@pytest.mark.parametrize("group, option", group_params())
def test_every_option_composes_and_resolves(group, option, tmp_path):
    cfg = compose_option(group, option, tmp_path)
    node = resolved(cfg)
    if group in ("data", "model", "backbone"):
        assert node[group]["name"] == option
    for key in ("data", "model", "trainer", "backbone", "budget", "sparsity", "eval", "paths"):
        assert key in node, key
    if group == "experiment":
        assert node["name"] == option  # presets name their runs
    else:
        assert node["name"] == f"{node['model']['name']}-{node['data']['name']}"
    OmegaConf.to_yaml(cfg.hydra)  # the hydra node itself must be valid


@pytest.mark.parametrize("option", options("data"))
def test_data_instantiates(option, tmp_path):
    cfg = load([f"data={option}", "data.root=" + str(tmp_path)], tmp_path)
    assert_signature_accepts(resolved(cfg)["data"])
    dm = instantiate(cfg.data)  # the constructor only stores settings: no I/O
    from cfme.data import InteractionDataModule

    assert isinstance(dm, InteractionDataModule)
    assert dm.name == option and dm.root == str(tmp_path)
    assert dm.n_neg == 5 and dm.split_seed == 2024 and dm.sample_seed == cfg.seed
    assert dm.split_method == "default"
    other = load([f"data={option}", "data.root=" + str(tmp_path), "data.split_method=authors"],
                 tmp_path)
    assert instantiate(other.data).split_method == "authors"
    assert list(tmp_path.iterdir()) == []
    expected_layers = {"amazon-book": 4}.get(option, 3)  # SPEC: L per dataset
    assert cfg.dataset.layers == expected_layers
    assert cfg.backbone.num_layers == expected_layers  # backbone=lightgcn reads the dataset's L


def test_synthetic_datamodule_sets_up(tmp_path):
    cfg = load(["data=synthetic", *SMALL], tmp_path)
    dm = instantiate(cfg.data)
    dm.prepare_data()
    dm.setup()
    assert (dm.num_users, dm.num_items) == (120, 160)
    batch = next(iter(dm.train_dataloader()))
    assert len(batch) == 3 and batch[0].shape == (min(8192, dm.sampler.num_triplets),)
    assert len(dm.val) > 0 and len(dm.test) > 0


@pytest.mark.parametrize("option", options("trainer"))
def test_trainer_instantiates(option, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load([f"trainer={option}", "data=gowalla"], tmp_path)
    node = resolved(cfg)["trainer"]
    assert node["_target_"] == "lightning.Trainer"
    assert node["check_val_every_n_epoch"] == cfg.eval.every == 5
    assert node["gradient_clip_val"] == 3.0 and node["gradient_clip_algorithm"] == "value"
    assert_signature_accepts(node, "logger")
    if option == "gpu" and not torch.cuda.is_available():
        assert node["accelerator"] == "gpu"
        pytest.skip("trainer=gpu composes; instantiating it needs a GPU")
    trainer = instantiate(cfg.trainer, logger=False)
    import lightning

    assert isinstance(trainer, lightning.Trainer)
    assert trainer.check_val_every_n_epoch == 5
    assert trainer.max_epochs == 1000
    assert trainer.logger is None
    if option == "cpu":
        assert isinstance(trainer.accelerator, lightning.pytorch.accelerators.CPUAccelerator)


@pytest.mark.parametrize("option", options("logger"))
def test_logger_targets(option, tmp_path):
    cfg = load([f"logger={option}"], tmp_path)
    node = resolved(cfg)["logger"]
    expected = {"wandb": "lightning.pytorch.loggers.WandbLogger",
                "csv": "lightning.pytorch.loggers.CSVLogger",
                "none": None}[option]
    assert node.get("_target_") == expected
    if expected is not None:
        assert node["save_dir"] == str(tmp_path)
    if option == "wandb":
        assert node["offline"] is True
        assert node["group"] == cfg.name
        assert "data=synthetic" in node["tags"]


@pytest.mark.parametrize("option", options("model"))
def test_model_nets(option, tmp_path):
    cfg = load([f"model={option}", *SMALL], tmp_path)
    node = resolved(cfg)["model"]
    assert node["stages"]
    dm = None
    for stage in node["stages"]:
        net = node[stage]["net"]
        extra = ("graph", "coarse") if stage == "fine" else ("graph",)
        cls = assert_signature_accepts(net, *extra)
        if stage == "fine":
            continue  # needs a trained coarse stage: signature check only
        if dm is None:
            dm = instantiate(cfg.data)
            dm.setup()
        model = instantiate(cfg.model[stage].net, _partial_=True)(graph=dm.graph)
        assert isinstance(model, cls)
        h, e = model()
        n = dm.num_users + dm.num_items
        assert e.shape == (n, cfg.model.dim)  # ego embeddings of the entities
        virtual = cfg.budget.num_coarse if stage == "coarse" else 0  # + codebook rows
        assert h.shape == (n + virtual, cfg.model.dim)


@pytest.mark.parametrize("option", ["legcf", "cfme"])
def test_spec_defaults(option, tmp_path):
    cfg = load([f"model={option}", "data=gowalla"], tmp_path)
    node = resolved(cfg)
    model = node["model"]
    assert model["dim"] == 128
    assert model["reg"] == pytest.approx(5e-4)
    coarse = model["coarse"]
    assert coarse["net"]["num_coarse"] == 300
    assert coarse["net"]["t"] == 2
    assert coarse["net"]["anchor_weight"] == pytest.approx(0.5)
    assert coarse["net"]["dim"] == 128
    assert coarse["net"]["partition"] == "metis"
    assert coarse["lr"] == pytest.approx(1e-3)
    assert coarse["batch_size"] == 8192
    assert coarse["patience"] == 5
    assert coarse["update"]["frequency"] == "every_epoch"
    assert coarse["update"]["lr"] is None  # the stage's lr in both phases
    # the authors' per-entity bias, on in the nets of every stage; zeros unless asked
    assert model["bias"] is True and coarse["net"]["bias"] is True
    assert model["bias_init_std"] == 0.0 and coarse["net"]["bias_init_std"] == 0.0
    assert node["data"]["n_neg"] == 5
    assert node["eval"]["ks"] == [5, 10, 20, 50]
    assert node["eval"]["monitor"] == "val/ndcg@5"
    assert node["backbone"]["num_layers"] == 3
    if option == "legcf":
        assert model["stages"] == ["coarse"] and "fine" not in model
        return
    assert model["stages"] == ["coarse", "fine"]
    fine = model["fine"]
    assert fine["net"]["num_fine"] == 100
    assert fine["net"]["k"] == 4
    assert fine["net"]["soft_threshold"] == pytest.approx(1.0)
    assert fine["net"]["bridge"] == pytest.approx(0.2)
    assert fine["net"]["k_pca"] == 80
    assert fine["net"]["dim"] == 128
    assert fine["lr"] == pytest.approx(3e-3)
    assert fine["batch_size"] == 32768
    assert fine["net"]["bias"] is True


def test_paper_preset_is_the_published_schedule(tmp_path):
    node = resolved(load(["experiment=paper_gowalla"], tmp_path))
    model = node["model"]
    assert node["data"]["name"] == "gowalla" and model["stages"] == ["coarse", "fine"]
    assert (node["data"]["split_method"], node["data"]["split_seed"]) == ("authors", 2024)
    assert model["bias"] is True
    # the authors' bias starts from N(0, 1) (torchfm's FeaturesLinear, an nn.Embedding)
    assert model["bias_init_std"] == 1.0 and model["coarse"]["net"]["bias_init_std"] == 1.0
    assert (model["coarse"]["batch_size"], model["coarse"]["lr"]) == (8192, pytest.approx(1e-3))
    assert (model["fine"]["batch_size"], model["fine"]["lr"]) == (32768, pytest.approx(3e-3))
    assert model["coarse"]["update"] == {"frequency": "every_epoch", "every": 1, "lr": None,
                                       "patience": None}
    assert node["eval"]["every"] == 5 and model["coarse"]["patience"] == 5


def test_overrides_propagate(tmp_path):
    cfg = load(["model=cfme", "budget=small", "sparsity=dense", "backbone=mf", "seed=7",
                "data=gowalla"], tmp_path)
    node = resolved(cfg)
    assert node["model"]["coarse"]["net"]["num_coarse"] == 160
    assert node["model"]["fine"]["net"]["num_fine"] == 40
    assert node["model"]["coarse"]["net"]["t"] == 4
    assert node["model"]["fine"]["net"]["k"] == 8
    assert node["model"]["fine"]["net"]["num_layers"] == 0
    assert node["model"]["fine"]["net"]["seed"] == 7
    assert node["data"]["sample_seed"] == 7
    assert node["name"] == "cfme-gowalla"


@pytest.mark.parametrize("option, stage", [("full", "full"), ("legcf", "coarse"),
                                           ("cfme", "coarse")])
def test_bias_init_std_reaches_the_net(option, stage, tmp_path):
    model = resolved(load([f"model={option}", "model.bias_init_std=0.5"], tmp_path))["model"]
    assert model[stage]["net"]["bias_init_std"] == 0.5
    if option == "cfme":  # stage 2 takes stage 1's trained bias; it draws none
        assert "bias_init_std" not in model["fine"]["net"]


@pytest.mark.parametrize("option", ["legcf", "cfme"])
def test_metis_options_reach_the_nets(option, tmp_path):
    model = resolved(load([f"model={option}"], tmp_path))["model"]
    assert model["coarse"]["net"]["metis_options"] is None  # pymetis's defaults
    model = resolved(load([f"model={option}", "model.coarse.net.metis_options={niter: 1}"],
                          tmp_path))["model"]
    assert model["coarse"]["net"]["metis_options"] == {"niter": 1}
    if option == "cfme":
        assert model["fine"]["net"]["metis_options"] is None
