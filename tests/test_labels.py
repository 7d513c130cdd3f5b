"""artprobe.sources.labels: label columns as class ids (-1 missing), and stored class names."""

from __future__ import annotations

from artprobe.sources import labels

def test_class_names_from_dataset_card(tmp_path):
    (tmp_path / "README.md").write_text(
        "---\ndataset_info:\n  features:\n  - name: image\n    dtype: image\n"
        "  - name: genre\n    dtype:\n      class_label:\n        names:\n"
        "          '0': portrait\n          '1': landscape\n---\n# card\n"
    )
    assert labels.class_names_from_readme(tmp_path) == {"genre": ["portrait", "landscape"]}


