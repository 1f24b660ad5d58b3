"""The preflight check on a live SparkSession: a scheme without its Hadoop connector names the package."""

from __future__ import annotations

import pytest

from profile_features.config import load_config
from profile_features.spark.preflight import Needs, PreflightError


@pytest.mark.spark
def test_a_scheme_without_its_hadoop_connector_names_the_package(spark):
    from profile_features.spark.preflight import check_with_spark

    config = load_config(None, ["data_dir=s3a://bucket/pf"])
    with pytest.raises(PreflightError, match=r"s3a://bucket/pf: add hadoop-aws .*--packages org\.apache\.hadoop:"):
        check_with_spark(spark, config, Needs())
    check_with_spark(spark, load_config(None, ["data_dir=file:///tmp/pf"]), Needs())
