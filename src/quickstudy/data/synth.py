"""A synthetic SuperNI-format task collection for the built-in demo.

Tasks come in families. The tasks of one family share one pool of inputs
(the same texts, each task in its own seeded order) and differ only in the
operation their definition names, so the input alone never tells which
answer is wanted: the definition (and its examples) does. Unseen tasks
compose operations that seen tasks of the same family teach (the baby of the
first animal = first + baby; entailment = same animal + same colour or place)
and carry SuperNI's unseen categories, which no seen task uses.

Everything is generated here from small word lists, deterministically per
seed, with a vocabulary of a few hundred words so that a word-level tokenizer
and a tiny model can learn it on a CPU.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from quickstudy.errors import DataError
from quickstudy.files import replace_directory

N_SEEN_INSTANCES = 300  # pre-finetuning takes 100 per seen task
N_UNSEEN_INSTANCES = 1110  # test 100 + validation 10 + train 1,000
N_EXAMPLE_INPUTS = 8  # per family, kept apart from every task's instances

ANIMALS = ("dog", "cat", "cow", "hen", "pig", "duck", "sheep", "horse", "fox", "owl", "bee", "frog")
BABY = dict(
    zip(
        ANIMALS,
        ("puppy", "kitten", "calf", "chick", "piglet", "duckling", "lamb", "foal", "cub", "owlet", "larva", "tadpole"),
    )
)
SOUND = dict(
    zip(ANIMALS, ("bark", "meow", "moo", "cluck", "oink", "quack", "baa", "neigh", "yelp", "hoot", "buzz", "croak"))
)
HOME = dict(
    zip(ANIMALS, ("kennel", "basket", "barn", "coop", "sty", "pond", "pen", "stable", "den", "nest", "hive", "marsh"))
)
RELATIONS = {"baby": BABY, "sound": SOUND, "home": HOME}
COLORS = ("red", "blue", "green", "brown", "black", "white")
PLACES = ("park", "farm", "river", "hill", "town", "garden")
TOYS = ("ball", "stick", "hat", "cup", "box", "bell")
NUMBERS = ("zero", "one", "two", "three", "four", "five", "six")
CHASE_VERBS = ("chased", "followed", "watched")
CHASER_ADJECTIVES = ("hungry", "angry", "curious", "bored")  # "it" is the first animal
CHASED_ADJECTIVES = ("slow", "scared", "tiny", "lost")  # "it" is the second animal
# (cause, effect) event pairs; "is ..." events are feelings, the others actions
CAUSES = (
    ("is hungry", "eats"), ("is sleepy", "sleeps"), ("is cold", "shivers"), ("is thirsty", "drinks"),
    ("runs", "is hot"), ("plays", "is happy"), ("falls", "is hurt"), ("swims", "is wet"),
)  # fmt: skip
EVENTS = tuple(event for pair in CAUSES for event in pair)


@dataclass(frozen=True)
class Operation:
    """One task of a family: what the definition asks and how the answer follows from an item."""

    name: str
    ask: str
    category: str
    answer: Callable[[Any], str]
    unseen: bool = False


@dataclass(frozen=True)
class Family:
    """Tasks over one input distribution: `draw` an item, `render` it as the instance input."""

    name: str
    intro: str
    domain: str
    draw: Callable[[random.Random], Any]
    render: Callable[[Any], str]
    operations: tuple[Operation, ...]


@dataclass(frozen=True)
class SynthCollection:
    """The generated collection in memory: task files (as JSON objects) and the split."""

    tasks: dict[str, dict[str, Any]]
    seen: tuple[str, ...]
    unseen: tuple[str, ...]


def _words(items: tuple[str, ...] | list[str]) -> str:
    return " ".join(items) if items else "none"


def _number(count: int) -> str:
    return NUMBERS[count]


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


# --- family: a list of animals ------------------------------------------------


def _draw_list(rng: random.Random) -> tuple[str, ...]:
    return tuple(rng.sample(ANIMALS, rng.randint(3, 5)))


LIST = Family(
    name="list",
    intro="You are given a list of animals.",
    domain="Animals",
    draw=_draw_list,
    render=" ".join,
    operations=(
        Operation("reverse", "Write the list in reverse order.", "Program Execution", lambda xs: _words(xs[::-1])),
        Operation("sort", "Sort the list in alphabetical order.", "Program Execution", lambda xs: _words(sorted(xs))),
        Operation(
            "count",
            "Write how many animals are in the list, as a word.",
            "Program Execution",
            lambda xs: _number(len(xs)),
        ),
        Operation("first", "Write the first animal of the list.", "Program Execution", lambda xs: xs[0]),
        Operation("second", "Write the second animal of the list.", "Program Execution", lambda xs: xs[1]),
        Operation("third", "Write the third animal of the list.", "Program Execution", lambda xs: xs[2]),
        Operation("last", "Write the last animal of the list.", "Program Execution", lambda xs: xs[-1]),
        Operation(
            "first_two", "Write the first two animals of the list.", "Program Execution", lambda xs: _words(xs[:2])
        ),
        Operation(
            "last_two", "Write the last two animals of the list.", "Program Execution", lambda xs: _words(xs[-2:])
        ),
        Operation(
            "drop_first", "Write the list without its first animal.", "Program Execution", lambda xs: _words(xs[1:])
        ),
        Operation(
            "drop_last", "Write the list without its last animal.", "Program Execution", lambda xs: _words(xs[:-1])
        ),
        Operation(
            "baby_each", "Write the baby of each animal.", "Word Semantics", lambda xs: _words([BABY[x] for x in xs])
        ),
        Operation(
            "sound_each", "Write the sound of each animal.", "Word Semantics", lambda xs: _words([SOUND[x] for x in xs])
        ),
        Operation(
            "home_each", "Write the home of each animal.", "Word Semantics", lambda xs: _words([HOME[x] for x in xs])
        ),
        Operation(
            "first_baby", "Write the baby of the first animal.", "Word Analogy", lambda xs: BABY[xs[0]], unseen=True
        ),
        Operation(
            "last_sound", "Write the sound of the last animal.", "Word Analogy", lambda xs: SOUND[xs[-1]], unseen=True
        ),
    ),
)


# --- family: two lists of animals ------------------------------------------


class ListPair(NamedTuple):
    first: tuple[str, ...]
    second: tuple[str, ...]

    def overlap(self) -> list[str]:
        return [x for x in self.first if x in self.second]


def _draw_list_pair(rng: random.Random) -> ListPair:
    first = rng.sample(ANIMALS, rng.randint(2, 4))
    second_length = rng.randint(2, 4)
    second = rng.sample(first, rng.randint(0, 2))
    second += rng.sample([x for x in ANIMALS if x not in first], second_length - len(second))
    rng.shuffle(second)
    return ListPair(tuple(first), tuple(second))


PAIR = Family(
    name="pair",
    intro="You are given two lists of animals, split by a bar.",
    domain="Animals",
    draw=_draw_list_pair,
    render=lambda p: f"{' '.join(p.first)} | {' '.join(p.second)}",
    operations=(
        Operation("first_list", "Write the first list.", "Program Execution", lambda p: _words(p.first)),
        Operation("second_list", "Write the second list.", "Program Execution", lambda p: _words(p.second)),
        Operation("only_first", "Write the animals of the first list that are not in the second list, or none.", "Program Execution",
                  lambda p: _words([x for x in p.first if x not in p.second])),
        Operation("only_second", "Write the animals of the second list that are not in the first list, or none.", "Program Execution",
                  lambda p: _words([x for x in p.second if x not in p.first])),
        Operation("join", "Write the first list and then the second list.", "Program Execution", lambda p: _words(p.first + p.second)),
        Operation("count_first", "Write how many animals are in the first list, as a word.", "Program Execution", lambda p: _number(len(p.first))),
        Operation("count_second", "Write how many animals are in the second list, as a word.", "Program Execution", lambda p: _number(len(p.second))),
        Operation("same_length", "Are the two lists of the same length? Answer yes or no.", "Text Matching", lambda p: _yes_no(len(p.first) == len(p.second))),
        Operation("overlap", "Write the animals of the first list that are also in the second list, or none.", "Overlap Extraction",
                  lambda p: _words(p.overlap()), unseen=True),
        Operation("overlap_count", "Write how many animals are in both lists, as a word.", "Overlap Extraction",
                  lambda p: _number(len(p.overlap())), unseen=True),
    ),
)  # fmt: skip


# --- family: analogies "dog : puppy , cat : kitten , cow : ?" ----------------


class Analogy(NamedTuple):
    relation: str
    animals: tuple[str, str, str]


def _draw_analogy(rng: random.Random) -> Analogy:
    return Analogy(rng.choice(sorted(RELATIONS)), tuple(rng.sample(ANIMALS, 3)))  # type: ignore[arg-type]


def _render_analogy(a: Analogy) -> str:
    lexicon = RELATIONS[a.relation]
    first, second, query = a.animals
    return f"{first} : {lexicon[first]} , {second} : {lexicon[second]} , {query} : ?"


ANALOGY = Family(
    name="analogy",
    intro="You are given pairs of words and one word with a question mark.",
    domain="Animals",
    draw=_draw_analogy,
    render=_render_analogy,
    operations=(
        Operation("relation", "Is the second word of each pair the baby, the sound or the home of the first? Answer baby, sound or home.",
                  "Word Relation Classification", lambda a: a.relation),
        Operation("query", "Write the word with the question mark.", "Information Extraction", lambda a: a.animals[2]),
        Operation("first_word", "Write the first word.", "Information Extraction", lambda a: a.animals[0]),
        Operation("first_pair", "Write the first pair.", "Information Extraction",
                  lambda a: f"{a.animals[0]} {RELATIONS[a.relation][a.animals[0]]}"),
        Operation("solve", "Write the word that takes the place of the question mark, as in the pairs.", "Word Analogy",
                  lambda a: RELATIONS[a.relation][a.animals[2]], unseen=True),
    ),
)  # fmt: skip


# --- families over templated sentences about one animal ----------------------


class Scene(NamedTuple):
    color: str
    animal: str
    place: str
    toy: str


def _draw_scene(rng: random.Random) -> Scene:
    return Scene(rng.choice(COLORS), rng.choice(ANIMALS), rng.choice(PLACES), rng.choice(TOYS))


def _subject(s: Scene) -> str:
    return f"the {s.color} {s.animal}"


def _where(s: Scene) -> str:
    return f"in the {s.place} with a {s.toy}"


def _statement(s: Scene, verb: str = "is") -> str:
    return f"{_subject(s)} {verb} {_where(s)} ."


def _location(s: Scene) -> str:
    """The scene without its toy, as the two-sentence families open."""
    return f"{_subject(s)} is in the {s.place}"


def _question(s: Scene, verb: str = "is", negated: bool = False) -> str:
    return f"{verb} {_subject(s)}{' not' if negated else ''} {_where(s)} ?"


STORY = Family(
    name="story",
    intro="You are given a short story.",
    domain="Stories",
    draw=_draw_scene,
    render=lambda s: f"the {s.color} {s.animal} went to the {s.place} and found a {s.toy} .",
    operations=(
        Operation("animal", "Which animal is the story about?", "Information Extraction", lambda s: s.animal),
        Operation("color", "What color is the animal?", "Information Extraction", lambda s: s.color),
        Operation("place", "Where did the animal go?", "Question Answering", lambda s: s.place),
        Operation("toy", "What did the animal find?", "Question Answering", lambda s: s.toy),
        Operation("sound", "Write the sound of the animal in the story.", "Word Semantics", lambda s: SOUND[s.animal]),
        Operation("title", "Write a title that names the animal and what it found.", "Title Generation",
                  lambda s: f"the {s.animal} and the {s.toy}", unseen=True),
        Operation("keywords", "Write the key words of the story: the animal, the place and what it found.", "Keyword Tagging",
                  lambda s: f"{s.animal} {s.place} {s.toy}", unseen=True),
    ),
)  # fmt: skip


def _draw_record(rng: random.Random) -> tuple[Scene, tuple[str, ...]]:
    fields = ["name", "color", "place", "toy"]
    rng.shuffle(fields)
    return _draw_scene(rng), tuple(fields)


def _render_record(record: tuple[Scene, tuple[str, ...]]) -> str:
    scene, fields = record
    values = {"name": scene.animal, "color": scene.color, "place": scene.place, "toy": scene.toy}
    return " | ".join(f"{field} : {values[field]}" for field in fields)


RECORD = Family(
    name="record",
    intro="You are given a record with a name, a color, a place and a toy.",
    domain="Animals",
    draw=_draw_record,
    render=_render_record,
    operations=(
        Operation("name", "Write the name.", "Information Extraction", lambda r: r[0].animal),
        Operation("color", "Write the color.", "Information Extraction", lambda r: r[0].color),
        Operation("place", "Write the place.", "Information Extraction", lambda r: r[0].place),
        Operation("toy", "Write the toy.", "Information Extraction", lambda r: r[0].toy),
        Operation("home", "Write the home of the animal in the name.", "Word Semantics", lambda r: HOME[r[0].animal]),
        Operation("sentence", "Write one sentence that says all of the record.", "Data to Text",
                  lambda r: _statement(r[0]), unseen=True),
    ),
)  # fmt: skip


STATEMENT = Family(
    name="statement",
    intro="You are given a sentence.",
    domain="Stories",
    draw=_draw_scene,
    render=_statement,
    operations=(
        Operation("question", "Turn the sentence into a question.", "Question Generation", _question),
        Operation("negate", "Write the sentence with not.", "Text Modification", lambda s: _statement(s, verb="is not")),
        Operation("past", "Write the sentence in the past.", "Text Modification", lambda s: _statement(s, verb="was")),
        Operation("animal", "Which animal is the sentence about?", "Information Extraction", lambda s: s.animal),
        Operation("place", "Where is the animal?", "Question Answering", lambda s: s.place),
        Operation("color", "What color is the animal?", "Question Answering", lambda s: s.color),
        Operation("negative_question", "Turn the sentence into a question with not.", "Question Rewriting",
                  lambda s: _question(s, negated=True), unseen=True),
        Operation("past_question", "Turn the sentence into a question in the past.", "Question Rewriting",
                  lambda s: _question(s, verb="was"), unseen=True),
    ),
)  # fmt: skip


# --- family: premise and hypothesis ------------------------------------------


class Claim(NamedTuple):
    premise: Scene
    animal: str
    aspect: str  # "color" or "place": what the hypothesis states
    value: str

    def label(self) -> str:
        if self.animal != self.premise.animal:
            return "neutral"
        return "entailment" if getattr(self.premise, self.aspect) == self.value else "contradiction"


def _draw_claim(rng: random.Random) -> Claim:
    premise, label, aspect = (
        _draw_scene(rng),
        rng.choice(("entailment", "contradiction", "neutral")),
        rng.choice(("color", "place")),
    )
    values = COLORS if aspect == "color" else PLACES
    truth = getattr(premise, aspect)
    if label == "neutral":
        return Claim(premise, rng.choice([a for a in ANIMALS if a != premise.animal]), aspect, rng.choice(values))
    value = truth if label == "entailment" else rng.choice([v for v in values if v != truth])
    return Claim(premise, premise.animal, aspect, value)


def _render_claim(c: Claim) -> str:
    hypothesis = f"the {c.animal} is {c.value}" if c.aspect == "color" else f"the {c.animal} is in the {c.value}"
    return f"{_location(c.premise)} . {hypothesis} ."


ENTAIL = Family(
    name="entail",
    intro="You are given two sentences.",
    domain="Stories",
    draw=_draw_claim,
    render=_render_claim,
    operations=(
        Operation("first_animal", "Which animal is the first sentence about?", "Information Extraction", lambda c: c.premise.animal),
        Operation("second_animal", "Which animal is the second sentence about?", "Information Extraction", lambda c: c.animal),
        Operation("same_animal", "Are the two sentences about the same animal? Answer yes or no.", "Text Matching",
                  lambda c: _yes_no(c.animal == c.premise.animal)),
        Operation("aspect", "Does the second sentence give a color or a place? Answer color or place.", "Text Categorization",
                  lambda c: c.aspect),
        Operation("first_color", "What color is the animal in the first sentence?", "Question Answering", lambda c: c.premise.color),
        Operation("first_place", "Where is the animal in the first sentence?", "Question Answering", lambda c: c.premise.place),
        Operation("label", "Does the first sentence mean that the second is true? Answer entailment, contradiction or neutral.",
                  "Textual Entailment", Claim.label, unseen=True),
        Operation("agree", "Does the first sentence mean that the second is true? Answer yes or no.", "Textual Entailment",
                  lambda c: _yes_no(c.label() == "entailment"), unseen=True),
    ),
)  # fmt: skip


# --- family: who does "it" refer to -------------------------------------------


class Chase(NamedTuple):
    first: str
    second: str
    verb: str
    adjective: str

    def referent_is_first(self) -> bool:
        return self.adjective in CHASER_ADJECTIVES


def _draw_chase(rng: random.Random) -> Chase:
    first, second = rng.sample(ANIMALS, 2)
    return Chase(first, second, rng.choice(CHASE_VERBS), rng.choice(CHASER_ADJECTIVES + CHASED_ADJECTIVES))


COREF = Family(
    name="coref",
    intro="You are given a sentence about two animals.",
    domain="Stories",
    draw=_draw_chase,
    render=lambda c: f"the {c.first} {c.verb} the {c.second} because it was {c.adjective} .",
    operations=(
        Operation("first", "Write the first animal.", "Information Extraction", lambda c: c.first),
        Operation("second", "Write the second animal.", "Information Extraction", lambda c: c.second),
        Operation("adjective", "Write the last word before the full stop.", "Information Extraction", lambda c: c.adjective),
        Operation("verb", "Write what the first animal did.", "Information Extraction", lambda c: c.verb),
        Operation("role", "Is it the first or the second animal? Answer first or second.", "Text Categorization",
                  lambda c: "first" if c.referent_is_first() else "second"),
        Operation("referent", "Write the animal that it refers to.", "Coreference Resolution",
                  lambda c: c.first if c.referent_is_first() else c.second, unseen=True),
        Operation("other", "Write the animal that it does not refer to.", "Coreference Resolution",
                  lambda c: c.second if c.referent_is_first() else c.first, unseen=True),
    ),
)  # fmt: skip


# --- family: cause and effect -------------------------------------------------


class Events(NamedTuple):
    color: str
    animal: str
    first: str
    second: str

    def relation(self) -> str:
        if (self.first, self.second) in CAUSES:
            return "cause"
        return "effect" if (self.second, self.first) in CAUSES else "none"


def _draw_events(rng: random.Random) -> Events:
    color, animal, label = rng.choice(COLORS), rng.choice(ANIMALS), rng.choice(("cause", "effect", "none"))
    if label == "none":
        first, second = rng.sample(CAUSES, 2)
        return Events(color, animal, rng.choice(first), rng.choice(second))
    cause, effect = rng.choice(CAUSES)
    return Events(color, animal, cause, effect) if label == "cause" else Events(color, animal, effect, cause)


def _kind(event: str) -> str:
    return "feeling" if event.startswith("is ") else "action"


CAUSE = Family(
    name="cause",
    intro="You are given two sentences about an animal.",
    domain="Stories",
    draw=_draw_events,
    render=lambda e: f"the {e.color} {e.animal} {e.first} . it {e.second} .",
    operations=(
        Operation("animal", "Which animal is it?", "Information Extraction", lambda e: e.animal),
        Operation("color", "What color is the animal?", "Question Answering", lambda e: e.color),
        Operation("first_kind", "Is the first sentence about a feeling or an action? Answer feeling or action.",
                  "Text Categorization", lambda e: _kind(e.first)),
        Operation("second_kind", "Is the second sentence about a feeling or an action? Answer feeling or action.",
                  "Text Categorization", lambda e: _kind(e.second)),
        Operation("relation", "Is the first sentence the cause or the effect of the second? Answer cause, effect or none.",
                  "Cause Effect Classification", Events.relation, unseen=True),
    ),
)  # fmt: skip


# --- family: can the question be answered --------------------------------------


class Query(NamedTuple):
    context: Scene
    animal: str
    asks: str  # "place" or "color"


def _draw_query(rng: random.Random) -> Query:
    context = _draw_scene(rng)
    animal = context.animal if rng.random() < 0.5 else rng.choice([a for a in ANIMALS if a != context.animal])
    return Query(context, animal, rng.choice(("place", "color")))


def _render_query(q: Query) -> str:
    question = f"where is the {q.animal} ?" if q.asks == "place" else f"what color is the {q.animal} ?"
    return f"{_location(q.context)} . {question}"


ANSWER = Family(
    name="answer",
    intro="You are given a sentence and a question.",
    domain="Stories",
    draw=_draw_query,
    render=_render_query,
    operations=(
        Operation("sentence_animal", "Which animal is the sentence about?", "Information Extraction", lambda q: q.context.animal),
        Operation("question_animal", "Which animal does the question ask about?", "Information Extraction", lambda q: q.animal),
        Operation("asks", "Does the question ask for a place or a color? Answer place or color.", "Text Categorization",
                  lambda q: q.asks),
        Operation("sentence_place", "Where is the animal in the sentence?", "Question Answering", lambda q: q.context.place),
        Operation("answerable", "Can the question be answered from the sentence? Answer yes or no.", "Answerability Classification",
                  lambda q: _yes_no(q.animal == q.context.animal), unseen=True),
    ),
)  # fmt: skip


FAMILIES = (LIST, PAIR, ANALOGY, STORY, RECORD, STATEMENT, ENTAIL, COREF, CAUSE, ANSWER)


# --- the collection -------------------------------------------------------------


def _input_pool(family: Family, seed: int, size: int) -> list[Any]:
    """`size` items of the family with distinct inputs (compared lower-cased, white space collapsed)."""
    rng = random.Random(f"quickstudy-synth:{seed}:{family.name}")
    items, seen_inputs = [], set()
    for _ in range(50 * size):
        item = family.draw(rng)
        key = " ".join(family.render(item).lower().split())
        if key not in seen_inputs:
            seen_inputs.add(key)
            items.append(item)
            if len(items) == size:
                return items
    raise DataError(f"synthetic family {family.name!r}: could not draw {size} distinct inputs")


def _examples(
    family: Family, operation: Operation, items: list[Any], rng: random.Random
) -> tuple[list[dict], list[dict]]:
    """Two positive examples and two negative ones; a negative answers another task of the family."""
    positive, negative = [], []
    for item in rng.sample(items, 4):
        answer = operation.answer(item)
        example = {"input": family.render(item), "output": answer}
        if len(positive) < 2:
            positive.append({**example, "explanation": f"The answer is {answer} , as the task asks."})
            continue
        wrong = sorted({other.answer(item) for other in family.operations} - {answer})
        wrong_answer = rng.choice(wrong) if wrong else "none"
        negative.append(
            {**example, "output": wrong_answer, "explanation": f"The answer should be {answer} , not {wrong_answer} ."}
        )
    return positive, negative


def _task_json(
    family: Family, operation: Operation, name: str, examples: list[Any], pool: list[Any], n: int, seed: int
) -> dict[str, Any]:
    rng = random.Random(f"quickstudy-synth:{seed}:{name}")
    positive, negative = _examples(family, operation, examples, rng)
    instances = [
        {"id": f"{name}-{index}", "input": family.render(item), "output": [operation.answer(item)]}
        for index, item in enumerate(rng.sample(pool, n))
    ]
    return {
        "Contributors": ["quickstudy"],
        "Source": ["quickstudy synthetic"],
        "URL": [],
        "Categories": [operation.category],
        "Reasoning": [],
        "Definition": [f"{family.intro} {operation.ask}"],
        "Input_language": ["English"],
        "Output_language": ["English"],
        "Instruction_language": ["English"],
        "Domains": [family.domain],
        "Positive Examples": positive,
        "Negative Examples": negative,
        "Instances": instances,
        "Instance License": ["Apache 2.0"],
    }


def synth_collection(
    seed: int = 0, n_seen: int = N_SEEN_INSTANCES, n_unseen: int = N_UNSEEN_INSTANCES
) -> SynthCollection:
    """Every synthetic task, deterministic per seed. Task names are `taskNNN_<family>_<operation>`."""
    tasks: dict[str, dict[str, Any]] = {}
    seen, unseen = [], []
    number = 0
    for family in FAMILIES:
        pool = _input_pool(family, seed, N_EXAMPLE_INPUTS + max(n_seen, n_unseen))
        examples, instances = pool[:N_EXAMPLE_INPUTS], pool[N_EXAMPLE_INPUTS:]
        for operation in family.operations:
            number += 1
            name = f"task{number:03d}_{family.name}_{operation.name}"
            n = n_unseen if operation.unseen else n_seen
            tasks[name] = _task_json(family, operation, name, examples, instances, n, seed)
            (unseen if operation.unseen else seen).append(name)
    return SynthCollection(tasks=tasks, seen=tuple(seen), unseen=tuple(unseen))


def write_synth_collection(out: str | Path, seed: int = 0, overwrite: bool = False) -> SynthCollection:
    """Write the collection as `out/tasks/*.json` and `out/splits/default/*_tasks.txt`.

    The folder appears whole or not at all: it is written beside `out` and renamed into place.
    """
    out = Path(out)
    if out.exists() and not overwrite and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"{out}: already exists and is not empty (remove it, or overwrite it with --force)")
    collection = synth_collection(seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        os.chmod(staging, 0o755)
        (staging / "tasks").mkdir()
        for name, task in collection.tasks.items():
            (staging / "tasks" / f"{name}.json").write_text(
                json.dumps(task, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
            )
        splits = staging / "splits" / "default"
        splits.mkdir(parents=True)
        for part, names in (("train", collection.seen), ("test", collection.unseen), ("excluded", ())):
            (splits / f"{part}_tasks.txt").write_text("".join(f"{name}\n" for name in names), encoding="utf-8")
        replace_directory(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return collection
