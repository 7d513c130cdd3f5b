"""Which hub repository and file hold a model's pretrained weights: timm's pretrained config
for the name (``hf_hub_id``; ``model.safetensors``, else ``pytorch_model.bin``, the order
timm's own hub loader tries), read from :func:`artprobe.common.timm_names.pretrained_source`'s cache
so parse time and the job decide it alike, without torch."""

from __future__ import annotations

from dataclasses import dataclass

from artprobe.common.hub import HubError, HubRequest
from artprobe.common.timm_names import pretrained_source

REPO_TYPE = "model"


class WeightsError(HubError):
    """A model's pretrained weights cannot be had as the config asks."""


@dataclass(frozen=True)
class WeightsSource:
    """Where ``models[<model>]``'s weights live: the repository, the revision asked for
    (``models[].revision``, else the ``@rev`` of timm's hub id, else ``main``) and the files
    timm would load, in the order it tries them."""

    model: str
    timm_name: str
    repo_id: str
    revision: str
    files: tuple[str, ...]

    def request(self) -> HubRequest:
        return HubRequest(
            "model",
            self.repo_id,
            self.revision,
            f"models[{self.model}].timm",
            f"models[{self.model}].revision",
        )


def fetches_weights(model: dict) -> bool:
    """A config model whose weights the weights stage fetches: pretrained, no local file."""
    return bool(model["pretrained"]) and model.get("weights") is None


def weights_source(model: str, timm_name: str, revision: str | None = None) -> WeightsSource:
    """The :class:`WeightsSource` of config model ``model``; a :class:`WeightsError` naming the
    model when timm knows no hub repository for it."""
    found = pretrained_source(timm_name)
    if found is None:
        arch = timm_name.split(".", 1)[0]
        raise WeightsError(
            f"models[{model}]: timm has no pretrained weights named {timm_name!r} (see "
            f"timm.list_pretrained('{arch}*')); name a pretrained tag, or set pretrained: false"
        )
    hub_id, files, url = found
    if not hub_id:
        where = f" (timm has only the URL {url})" if url else ""
        raise WeightsError(
            f"models[{model}]: timm's pretrained config of {timm_name!r} names no hub repository{where}; "
            f"download the weights file and set models[{model}].weights to it, or set pretrained: false"
        )
    repo_id, _, pinned = hub_id.partition("@")
    return WeightsSource(model, timm_name, repo_id, revision or pinned or "main", tuple(files))
