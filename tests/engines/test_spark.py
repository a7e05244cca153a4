"""What of a Spark failure reaches the user (the engine runs in test_engines.py)."""

from census_salary.engines.spark import _could_not_start, _first_line


def test_a_python_worker_failure_is_told_by_its_error_line() -> None:
    message = (
        "An exception was thrown from the Python worker. Please see the stack trace below.\n"
        "Traceback (most recent call last):\n"
        '  File "worker.py", line 1, in main\n'
        "ModuleNotFoundError: No module named 'census_salary'\n"
        "\tat org.apache.spark.api.python.BasePythonRunner.handlePythonException\n"
    )
    assert _first_line(Exception(message)) == "ModuleNotFoundError: No module named 'census_salary'"


def test_a_jvm_failure_is_told_by_its_first_line() -> None:
    first = "[JAVA_GATEWAY_EXITED] Java gateway process exited."
    assert _first_line(RuntimeError(f"{first}\nmore detail\n")) == first


def test_a_session_a_cluster_master_cannot_give_names_the_master_not_java() -> None:
    refused = RuntimeError("An error occurred while calling None.SparkSession.\nFailed to connect")
    said = _could_not_start("spark://10.0.0.9:7077", refused)
    assert said.startswith("Spark could not start a session on spark://10.0.0.9:7077")
    assert "Java" not in said


def test_a_local_session_that_cannot_start_points_at_java() -> None:
    said = _could_not_start(None, RuntimeError("Java gateway process exited"))
    assert "it needs Java 17 or newer" in said
