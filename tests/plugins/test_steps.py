"""Step workflows: order, weights, progress, skip, rollback and its failures."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from synapse_sdk.errors import PluginError, StepError
from synapse_sdk.plugins.context import RuntimeContext
from synapse_sdk.plugins.steps import (
    BaseStep,
    BaseStepContext,
    Orchestrator,
    StepRegistry,
    StepResult,
)
from synapse_sdk.plugins.steps.orchestrator import Interrupted


class Step(BaseStep[BaseStepContext]):
    """A configurable step that records what happens to it in a shared journal."""

    def __init__(
        self,
        name: str,
        weight: float = 1.0,
        journal: list[str] | None = None,
        fail: bool | str = False,
        skip: bool = False,
        rollback_raises: bool = False,
        inner_progress: int = 0,
    ) -> None:
        self._name = name
        self._weight = weight
        self.journal = journal if journal is not None else []
        self.fail = fail
        self.skip = skip
        self.rollback_raises = rollback_raises
        self.inner_progress = inner_progress

    @property
    def name(self) -> str:
        return self._name

    @property
    def progress_weight(self) -> float:
        return self._weight

    def can_skip(self, context: BaseStepContext) -> bool:
        return self.skip

    def execute(self, context: BaseStepContext) -> StepResult:
        assert context.current_step == self.name
        self.journal.append(f'run:{self.name}')
        for i in range(1, self.inner_progress + 1):
            context.set_progress(i, self.inner_progress)
        if self.fail == 'raise':
            raise ValueError(f'{self.name} exploded')
        if self.fail:
            return StepResult(success=False, error=f'{self.name} said no')
        return StepResult(data={'step': self.name}, rollback_data={'undo': self.name})

    def rollback(self, context: BaseStepContext, result: StepResult) -> None:
        self.journal.append(f'rollback:{self.name}')
        if self.rollback_raises:
            raise OSError(f'{self.name} rollback broke')


def make(*steps: Step) -> tuple[StepRegistry[BaseStepContext], BaseStepContext]:
    registry: StepRegistry[BaseStepContext] = StepRegistry()
    for step in steps:
        registry.register(step)
    return registry, BaseStepContext(runtime_ctx=RuntimeContext())


def test_steps_run_in_order_and_results_are_appended():
    journal: list[str] = []
    registry, ctx = make(Step('a', journal=journal), Step('b', journal=journal))
    results = Orchestrator(registry, ctx).run()
    assert journal == ['run:a', 'run:b']
    assert [r.data['step'] for r in ctx.step_results] == ['a', 'b']
    assert results == ctx.step_results
    assert ctx.current_step is None


@pytest.mark.parametrize(
    ('failing', 'mode', 'expected_rollbacks'),
    [
        ('c', 'raise', ['rollback:c', 'rollback:b', 'rollback:a']),
        ('b', True, ['rollback:b', 'rollback:a']),
        ('a', 'raise', ['rollback:a']),
    ],
)
def test_failure_rolls_back_executed_steps_in_reverse(failing, mode, expected_rollbacks):
    journal: list[str] = []
    steps = [
        Step(n, journal=journal, fail=mode if n == failing else False) for n in ('a', 'b', 'c', 'd')
    ]
    registry, ctx = make(*steps)
    with pytest.raises(StepError) as info:
        Orchestrator(registry, ctx).run()
    assert info.value.step == failing
    assert failing in str(info.value)
    assert [j for j in journal if j.startswith('rollback')] == expected_rollbacks
    assert 'run:d' not in journal
    assert ctx.step_results[-1].success is False
    if mode == 'raise':
        assert isinstance(info.value.__cause__, ValueError)
        assert 'exploded' in ctx.step_results[-1].error


def test_rollback_failure_is_recorded_and_does_not_hide_original():
    journal: list[str] = []
    registry, ctx = make(
        Step('a', journal=journal),
        Step('b', journal=journal, rollback_raises=True),
        Step('c', journal=journal, fail='raise'),
    )
    with pytest.raises(StepError) as info:
        Orchestrator(registry, ctx).run()
    assert info.value.step == 'c'
    assert isinstance(info.value.__cause__, ValueError)
    # the broken rollback of b did not stop a's rollback
    assert journal[-3:] == ['rollback:c', 'rollback:b', 'rollback:a']
    assert len(ctx.errors) == 1 and "'b'" in ctx.errors[0] and 'rollback broke' in ctx.errors[0]


def test_skipped_step_counts_as_done_and_is_not_rolled_back():
    journal: list[str] = []
    seen: list[float] = []
    registry, ctx = make(
        Step('a', journal=journal, skip=True),
        Step('b', journal=journal, fail='raise'),
    )
    with pytest.raises(StepError):
        Orchestrator(registry, ctx, report=seen.append).run()
    assert ctx.step_results[0].skipped is True
    assert journal == ['run:b', 'rollback:b']
    assert seen == [0.5]


def test_progress_follows_weights_that_need_not_sum_to_one():
    seen: list[float] = []
    registry, ctx = make(Step('a', weight=2), Step('b', weight=6, inner_progress=4), Step('c', 0))
    Orchestrator(registry, ctx, report=seen.append).run()
    assert seen == pytest.approx([0.25, 0.4375, 0.625, 0.8125, 1.0])
    assert seen == sorted(seen)


def test_progress_never_goes_backwards_inside_a_step():
    class Wobbly(Step):
        def execute(self, context):
            for current in (5, 2, 8, 1, 10):
                context.set_progress(current, 10)
            return StepResult()

    seen: list[float] = []
    registry, ctx = make(Wobbly('w'))
    Orchestrator(registry, ctx, report=seen.append).run()
    assert seen == [0.5, 0.8, 1.0]


def test_all_zero_weights_share_equally():
    seen: list[float] = []
    registry, ctx = make(Step('a', 0), Step('b', 0))
    Orchestrator(registry, ctx, report=seen.append).run()
    assert seen == [0.5, 1.0]


def test_execute_must_return_a_step_result():
    class Bad(Step):
        def execute(self, context):
            return {'success': True}

    registry, ctx = make(Bad('bad'))
    with pytest.raises(StepError, match='StepResult'):
        Orchestrator(registry, ctx).run()


def test_registry_editing():
    registry, _ = make(Step('a'), Step('c'))
    registry.insert_before('c', Step('b'))
    registry.insert_after('c', Step('d'))
    registry.insert_before('a', Step('start'))
    assert [s.name for s in registry.get_steps()] == ['start', 'a', 'b', 'c', 'd']
    registry.unregister('b')
    assert 'b' not in registry and len(registry) == 4


@pytest.mark.parametrize(
    ('operation', 'message'),
    [
        (lambda r: r.register(Step('a')), 'already registered'),
        (lambda r: r.unregister('zzz'), "No step named 'zzz'"),
        (lambda r: r.insert_after('zzz', Step('x')), 'registered: a'),
        (lambda r: r.register(Step('neg', weight=-1)), 'must be a number >= 0'),
        (lambda r: r.register(object()), 'Only BaseStep'),
    ],
)
def test_registry_errors(operation, message):
    registry, _ = make(Step('a'))
    with pytest.raises(PluginError, match=message):
        operation(registry)


def test_step_result_defaults_match_spec():
    result = StepResult()
    assert result.success is True and result.skipped is False
    assert result.data == {} and result.rollback_data == {} and result.error is None
    assert result.timestamp is not None


def test_interrupt_rolls_back_then_propagates():
    journal: list[str] = []

    class Interrupted(Step):
        def execute(self, context):
            raise KeyboardInterrupt

    registry, ctx = make(Step('a', journal=journal), Interrupted('b', journal=journal))
    with pytest.raises(KeyboardInterrupt):
        Orchestrator(registry, ctx).run()
    assert journal == ['run:a', 'rollback:b', 'rollback:a']


# -- signals: SIGTERM and SIGHUP stop a run like Ctrl-C, and never cut a rollback short ------


class Signalling(Step):
    """Sends this process a real signal from inside execute() (or rollback())."""

    def __init__(self, name: str, journal: list[str], signum: int, during: str) -> None:
        super().__init__(name, journal=journal)
        self.signum = signum
        self.during = during

    def execute(self, context):
        self.journal.append(f'run:{self.name}')
        if self.during == 'execute':
            os.kill(os.getpid(), self.signum)
            time.sleep(5)  # the signal interrupts this
            self.journal.append('not interrupted')
        return StepResult()

    def rollback(self, context, result):
        if self.during == 'rollback':
            os.kill(os.getpid(), self.signum)  # a second Ctrl-C while rolling back
            time.sleep(0.05)
        self.journal.append(f'rollback:{self.name}')


@pytest.mark.parametrize('signum', [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_signal_rolls_back_and_raises_interrupted(signum):
    journal: list[str] = []
    registry, ctx = make(
        Step('a', journal=journal),
        Signalling('b', journal, signum, 'execute'),
        Step('c', journal=journal),
    )
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    with pytest.raises(Interrupted) as info:
        Orchestrator(registry, ctx).run()
    assert info.value.signum == signum and info.value.exit_code == 128 + signum
    assert isinstance(info.value, KeyboardInterrupt)
    assert str(info.value) == f'interrupted by {signal.Signals(signum).name}'
    assert journal == ['run:a', 'run:b', 'rollback:b', 'rollback:a']
    assert {s: signal.getsignal(s) for s in before} == before  # handlers restored


class BlockingInC(Step):
    """Waits the way a C extension does (Ray's ``wait``): it runs the signal handlers while it
    blocks, and when one raises, it raises a bare ``KeyboardInterrupt`` of its own instead.
    (Mimicked in Python; the real one is in tests/executors/test_resume.py.)"""

    def __init__(self, name: str, journal: list[str], signum: int) -> None:
        super().__init__(name, journal=journal)
        self.signum = signum

    def execute(self, context):
        self.journal.append(f'run:{self.name}')
        try:
            os.kill(os.getpid(), self.signum)
            time.sleep(5)
        except KeyboardInterrupt:
            raise KeyboardInterrupt from None
        return StepResult()


@pytest.mark.parametrize('signum', [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_turned_into_a_bare_keyboard_interrupt_keeps_its_name(signum):
    journal: list[str] = []
    registry, ctx = make(Step('a', journal=journal), BlockingInC('b', journal, signum))
    with pytest.raises(Interrupted) as info:
        Orchestrator(registry, ctx).run()
    assert info.value.signum == signum and info.value.exit_code == 128 + signum
    assert journal == ['run:a', 'run:b', 'rollback:b', 'rollback:a']


def test_signal_during_rollback_waits_for_it():
    journal: list[str] = []
    registry, ctx = make(
        Signalling('a', journal, signal.SIGTERM, 'rollback'),
        Step('b', journal=journal, fail='raise'),
    )
    with pytest.raises(StepError, match='b exploded'):
        Orchestrator(registry, ctx).run()
    assert journal == ['run:a', 'run:b', 'rollback:b', 'rollback:a']


def test_signal_between_steps_stops_before_the_next_one():
    journal: list[str] = []

    def report(fraction: float) -> None:  # runs after step a, before step b
        if 0 < fraction < 1:
            os.kill(os.getpid(), signal.SIGTERM)

    registry, ctx = make(Step('a', journal=journal), Step('b', journal=journal))
    with pytest.raises(Interrupted):
        Orchestrator(registry, ctx, report=report).run()
    assert journal == ['run:a', 'rollback:a']  # b never ran, so it is not rolled back


def test_a_signal_after_the_last_step_does_not_undo_the_run():
    journal: list[str] = []

    def report(fraction: float) -> None:  # the last step has published: too late to stop
        if fraction == 1.0:
            os.kill(os.getpid(), signal.SIGHUP)

    registry, ctx = make(Step('a', journal=journal), Step('b', journal=journal))
    orchestrator = Orchestrator(registry, ctx, report=report)
    results = orchestrator.run()
    assert all(r.success for r in results) and orchestrator.late_signal == signal.SIGHUP
    assert journal == ['run:a', 'run:b']


def test_an_applications_own_handler_is_left_alone():
    seen: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:
        journal: list[str] = []

        class Polite(Step):
            def execute(self, context):
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.05)
                return super().execute(context)

        registry, ctx = make(Polite('a', journal=journal))
        Orchestrator(registry, ctx).run()
        assert seen == [signal.SIGTERM] and journal == ['run:a']
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_off_the_main_thread_no_handlers_are_installed():
    journal: list[str] = []
    registry, ctx = make(Step('a', journal=journal))
    errors: list[BaseException] = []

    def run() -> None:
        try:
            Orchestrator(registry, ctx).run()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert errors == [] and journal == ['run:a']
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_a_progress_reporter_that_raises_is_ignored():
    journal: list[str] = []
    registry, ctx = make(Step('a', journal=journal, inner_progress=3), Step('b', journal=journal))

    def report(fraction: float) -> None:
        raise OSError(28, 'No space left on device')

    results = Orchestrator(registry, ctx, report=report).run()
    assert [r.success for r in results] == [True, True]
