"""The data model: the declarative type table (``schema``), the Graph ``$select`` lists
(``selects``), pure converters Graph JSON -> J1 objects (``convert``) and ``syncd document``."""
