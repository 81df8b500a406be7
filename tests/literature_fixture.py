"""The two well-formed BibTeX entries that the literature and site tests both start from."""

BIB = """\
@misc{alpha2024first,
  title         = {First Paper About Alpha},
  author        = {Alpha, Ann},
  howpublished  = {arXiv preprint},
  year          = {2024},
  eprint        = {2401.00001},
  archivePrefix = {arXiv},
}

@inproceedings{beta2023second,
  title     = {Second Paper About Beta},
  author    = {Beta, Bob and Gamma, Gus},
  booktitle = {Proceedings of a Venue},
  year      = {2023},
  doi       = {10.1000/beta.2023},
}
"""
