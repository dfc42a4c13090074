"""Dataset adapters found by name: one module per dataset, each registering itself.

To add a dataset, drop ``mydata.py`` here::

    from ferbench.data.dataset import FerDataset
    from ferbench.data.registry import DatasetSpec, register_dataset

    def load_mydata(data_root=None, **kwargs) -> FerDataset:
        ...  # uint8 images (N, H, W, C), labels (N,), split names (N,), canonical class names

    register_dataset(DatasetSpec(
        name="mydata", display_name="MyData", loader=load_mydata,
        splits={"train": "train", "val": "val", "test": "test"},
        label_map={"Anger": "angry", "Joy": "happy"},   # native name -> canonical, in label order
        files=(("mydata/labels.csv",),),   # optional: lets the CLI say the data is absent before loading torch
    ))

``load_dataset("mydata")``, unions such as ``"fer2013+mydata"`` and ``ferbench crossdomain`` then find it:
the registry imports every module of this package the first time it meets a name it does not know.
Modules whose name starts with ``_`` are skipped.
"""
