"""Compose verl's own Hydra configs with our overrides and run verl's own validation, on CPU, before launch.

GRPO: `ppo_trainer` + `verl.utils.config.validate_config` (what `python -m verl.trainer.main_ppo` runs first)
+ the dataclass conversions verl's workers do (`omega_conf_to_dataclass` of the rollout and algorithm
sections; the reference section is renamed by the worker first), none of which loads a model, + batch-split
rules verl relies on but checks only without dynamic batching, + the reward file exists.
SFT and DPO: `sft_trainer_engine` + the conversions `SFTTrainer._build_config` does (engine, optim, checkpoint,
profiler); the `model` section is left out because converting it loads the tokenizer and processor from the
model folder, which may not exist yet at planning time.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import io
import logging
import warnings
from pathlib import Path

from reasoner.errors import ReasonerError

log = logging.getLogger(__name__)

VERL_VERSION = "0.9.1"
GRPO_CONFIG = "ppo_trainer"
SFT_CONFIG = "sft_trainer_engine"


def verl_config_dir() -> Path:
    """verl's packaged Hydra config folder (verl/trainer/config)."""
    import verl

    if verl.__version__ != VERL_VERSION:
        raise ReasonerError(
            f"verl {verl.__version__} is installed; this project's translation is written and "
            f"tested for verl=={VERL_VERSION} (install from requirements/gpu.lock or cpu.lock)"
        )
    return Path(verl.__file__).resolve().parent / "trainer" / "config"


def compose(config_name: str, overrides: list[str], *, where: str = "verl"):
    """verl's `config_name` with `overrides` applied (a DictConfig); bad keys or values raise ReasonerError.

    Equivalent to Hydra's `compose(config_name, overrides)` for value overrides (`key=v`, `+key=v`): verl's
    config is composed once per process, then each call applies its overrides with Hydra's own override
    parser and rules (hydra-core pinned at 1.3.8), ~20x faster than a fresh composition. Config-group
    overrides (choosing another defaults file) are not supported and are rejected.
    """
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        cfg = copy.deepcopy(compose_defaults(config_name))
        parsed = OverridesParser.create().parse_overrides(overrides=list(overrides))
        groups = [o.input_line for o in parsed if (verl_config_dir() / o.key_or_group.lstrip("+~")).is_dir()]
        if groups:
            raise ReasonerError(
                f"{where}: {groups} would switch a verl config group; only values can be overridden"
            )
        ConfigLoaderImpl._apply_overrides_to_config(parsed, cfg)
        return cfg
    except (HydraException, OmegaConfBaseException) as err:
        raise ReasonerError(
            f"{where}: verl's {config_name} config rejected the overrides: {_first_lines(err)}"
        ) from None


@functools.lru_cache(maxsize=4)
def compose_defaults(config_name: str):
    """verl's config `config_name` as Hydra composes it from verl's own files, without overrides."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(verl_config_dir()), version_base=None):
        return hydra_compose(config_name=config_name)


def validate_grpo(cfg, *, where: str = "verl") -> None:
    """verl's own checks of a composed `ppo_trainer` config (no Ray, no model loading)."""
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import omega_conf_to_dataclass, validate_config

    def checks() -> None:
        validate_config(cfg, use_reference_policy=need_reference_policy(cfg), use_critic=need_critic(cfg))
        _check_batch_split(cfg)
        omega_conf_to_dataclass(cfg.actor_rollout_ref.rollout)
        omega_conf_to_dataclass(cfg.algorithm)
        reward_file = cfg.reward.custom_reward_function.path
        if reward_file and not Path(reward_file).is_file():
            raise ValueError(f"reward.custom_reward_function.path: {reward_file} does not exist")

    _run_checks(checks, "ppo_trainer", where)


def _check_batch_split(cfg) -> None:
    """Batch rules verl checks only without dynamic batching, yet relies on in both: every rollout batch and every
    minibatch (in sequences: prompts x rollout.n) splits evenly over the data-parallel ranks (all GPUs)."""
    gpus = cfg.trainer.nnodes * cfg.trainer.n_gpus_per_node
    n = cfg.actor_rollout_ref.rollout.n
    prompts, mini = cfg.data.train_batch_size, cfg.actor_rollout_ref.actor.ppo_mini_batch_size
    if prompts % mini:
        raise ValueError(
            f"data.train_batch_size ({prompts}) must be a multiple of ppo_mini_batch_size ({mini})"
        )
    if (mini * n) % gpus:
        raise ValueError(
            f"ppo_mini_batch_size x rollout.n ({mini} x {n}) must be divisible by the {gpus} GPUs"
        )


def validate_sft(cfg, *, where: str = "verl") -> None:
    """The conversions verl's Ray SFT trainer does first, minus the model section (it loads the tokenizer)."""
    from verl.utils.config import omega_conf_to_dataclass

    def checks() -> None:
        for section in ("engine", "optim", "checkpoint", "profiler"):
            omega_conf_to_dataclass(cfg[section])
        world = cfg.trainer.nnodes * cfg.trainer.n_gpus_per_node
        if cfg.data.train_batch_size % world:
            raise ValueError(
                f"data.train_batch_size ({cfg.data.train_batch_size}) must be divisible by the "
                f"number of GPUs ({world}): each data-parallel rank takes an equal share"
            )
        micro = cfg.data.micro_batch_size_per_gpu
        # A DPO batch is counted in pairs, two rows each, and its micro-batches in rows (whole pairs: even).
        rows = 2 if cfg.data.custom_cls.name == "PairDataset" else 1
        if rows == 2 and micro % 2:
            raise ValueError(
                f"micro_batch_size_per_gpu ({micro}) must be even for DPO: a micro-batch holds whole pairs"
            )
        if not cfg.data.use_dynamic_bsz and (rows * cfg.data.train_batch_size // world) % micro:
            raise ValueError(
                f"data.train_batch_size per GPU ({rows * cfg.data.train_batch_size // world} rows) must be a "
                f"multiple of micro_batch_size_per_gpu ({micro}) without dynamic batching"
            )

    _run_checks(checks, "sft_trainer_engine", where)


def _run_checks(checks, config_name: str, where: str) -> None:
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    # verl prints progress and warns about defaults it changes (critic disabled for GRPO): keep that quiet here.
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            checks()
        except (
            AssertionError,
            ValueError,
            TypeError,
            KeyError,
            HydraException,
            OmegaConfBaseException,
        ) as err:
            raise ReasonerError(
                f"{where}: verl's validation of the {config_name} config failed: "
                f"{_first_lines(err) or type(err).__name__}"
            ) from None


def _first_lines(err: BaseException, limit: int = 3) -> str:
    lines = [line for line in str(err).splitlines() if line.strip()]
    return " ".join(lines[:limit])
