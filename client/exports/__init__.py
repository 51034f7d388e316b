"""``babelcap export``'s formats, one module each, over one streaming reader.

- ``source``: a results file or a folder of shards, read record by record (the last record of a
  path wins), with an inventory of kinds, tasks and languages from a first pass;
- ``seed``: the original scripts' JSON, exactly (``seed-json``);
- ``tables``: CSV and Parquet;
- ``captions``: a caption file per medium (kohya / OneTrainer / taggui);
- ``datasets``: a Hugging Face ``imagefolder``/``videofolder`` and WebDataset shards;
- ``thumbnails`` + ``report`` + ``report_page``: the offline HTML review report.
"""
