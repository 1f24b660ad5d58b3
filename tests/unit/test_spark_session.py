"""Spark options that only a driver launch reads are named, not silently dropped, under spark-submit."""

from profile_features.spark.session import ignored_launch_settings


def test_driver_launch_settings_under_spark_submit_name_the_option_that_works():
    conf = {"spark.driver.memory": "4g", "spark.sql.shuffle.partitions": "64", "spark.driver.extraClassPath": "/x"}
    messages = ignored_launch_settings(conf, submitted=True, given={"spark.driver.extraClassPath": "/x"})
    assert len(messages) == 1  # a runtime option is fine; a launch option spark-submit already has is too
    assert "spark.conf.spark.driver.memory=4g" in messages[0] and "--driver-memory 4g" in messages[0]
    given = {"spark.driver.memory": "1g"}
    assert "with 1g" in ignored_launch_settings(conf, submitted=True, given=given)[0]
    assert ignored_launch_settings(conf, submitted=False, given={}) == []  # a plain python run starts the JVM
